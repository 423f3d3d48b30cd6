/*
 * pmp_slurmtext.h - what SLURM said about a step that ended, in one
 * sentence.  Internal to the frontend; used by pmp_job when the job exits.
 *
 * When SLURM ends a step under the executor (srun as the launcher, or a
 * launcher that starts its daemons with srun), the account of it is in
 * the launcher's stderr, in SLURM's own words and spread over several
 * lines:
 *
 *     srun: error: Node failure on n2
 *     slurmstepd-n1: error: *** STEP 12.0 ON n1 CANCELLED AT 2026-12-07T16:17:41
 *         DUE TO NODE FAILURE, SEE SLURMCTLD LOG FOR DETAILS ***
 *     slurmstepd-n1: error: *** JOB 12 ON n1 CANCELLED AT ... DUE TO TIME LIMIT ***
 *     srun: error: n2: task 2: Exited with exit code 3
 *
 * pmp_slurmtext_summary() reads such a text (the tail of that stderr) and
 * writes one sentence that names the SLURM job, the step, the node and the
 * state, which the executor's exit text then leads with:
 *
 *     SLURM job 12, step 12.0: CANCELLED on n1 due to NODE FAILURE;
 *     node n2 failed
 *
 * Pure functions of their input: no allocation, no state.
 */
#ifndef PMP_SLURMTEXT_H
#define PMP_SLURMTEXT_H

#include <stddef.h>

/* Writes into out (size n > 0, always NUL-terminated, truncated to fit)
 * the summary of the SLURM lines found in text and returns 0; returns -1
 * and leaves out untouched when text has none of them (no "*** STEP",
 * "*** JOB", "Node failure on" or "srun: error: <node>: task" line).
 * The last such line of each kind counts (a tail ends with the latest),
 * but the first of srun's task lines: the first task that ended is the
 * cause, srun ends the others for it. */
int pmp_slurmtext_summary(const char *text, char *out, size_t n);

#endif
