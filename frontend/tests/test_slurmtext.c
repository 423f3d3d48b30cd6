/*
 * test_slurmtext.c - unit test of pmp_slurmtext (unit.slurmtext), the
 * sentence that names the SLURM job, step, node and state from srun's and
 * slurmstepd's lines in the launcher's stderr.  The inputs are the tails
 * SLURM 22.05 wrote in the SLURM tests (a node failure, a time limit, a
 * cancelled step and allocation, a rank that exited); text without SLURM's
 * lines gives nothing and leaves the buffer alone; truncated and
 * malformed lines and a small buffer neither crash nor overrun.  Exits 0
 * on success; prints the failing check and exits 1 otherwise.
 */
#include "pmp_slurmtext.h"

#include <stdio.h>
#include <string.h>

#include "pmp_check.h"

static void s_expect(const char *text, const char *want)
{
    char out[256];
    CHECK(pmp_slurmtext_summary(text, out, sizeof out) == 0);
    if (strcmp(out, want) != 0) {
        fprintf(stderr, "got  '%s'\nwant '%s'\n", out, want);
        CHECK(strcmp(out, want) == 0);
    }
}

int main(void)
{
    s_expect("srun: error: Node failure on n2\n"
             "srun: Job step aborted: Waiting up to 4 seconds for job step to finish.\n"
             "slurmstepd-n1: error: *** STEP 2.0 ON n1 CANCELLED AT 2026-12-07T16:17:41 DUE "
             "TO NODE FAILURE, SEE SLURMCTLD LOG FOR DETAILS ***\n"
             "srun: error: n1: tasks 0-1: Terminated\n"
             "srun: launch/slurm: _step_signal: Terminating StepId=2.0\n",
             "SLURM job 2, step 2.0: CANCELLED on n1 due to NODE FAILURE; node n2 failed; "
             "tasks 0-1 on n1: Terminated");
    s_expect("slurmstepd-n1: error: *** STEP 9.0 ON n1 CANCELLED AT 2026-12-07T16:20:31 DUE TO "
             "TIME LIMIT ***\nsrun: Job step aborted\n",
             "SLURM job 9, step 9.0: CANCELLED on n1 due to TIME LIMIT");
    s_expect("slurmstepd-n1: error: *** JOB 12 ON n1 CANCELLED AT 2026-12-07T13:15:55 ***\n",
             "SLURM job 12: CANCELLED on n1");
    s_expect("srun: Job step aborted\n"
             "slurmstepd-n2: error: *** STEP 12.3 ON n2 CANCELLED AT 2026-12-07T13:15:55 ***\n",
             "SLURM job 12, step 12.3: CANCELLED on n2");
    s_expect("srun: error: n2: task 2: Exited with exit code 3\n"
             "srun: launch/slurm: _step_signal: Terminating StepId=7.1\n",
             "SLURM job 7, step 7.1; task 2 on n2: Exited with exit code 3");
    /* a rank that exited: its line, not the tasks ended after it */
    s_expect("srun: error: n2: task 2: Exited with exit code 3\n"
             "srun: launch/slurm: _step_signal: Terminating StepId=3.5\n"
             "slurmstepd-n1: error: *** STEP 3.5 ON n1 CANCELLED AT 2026-12-07T16:37:26 ***\n"
             "srun: error: n2: task 3: Terminated\n"
             "srun: error: n1: tasks 0-1: Terminated\n"
             "srun: Force Terminated StepId=3.5\n",
             "SLURM job 3, step 3.5: CANCELLED on n1; task 2 on n2: Exited with exit code 3");
    /* the last of each kind counts */
    s_expect("*** STEP 1.0 ON n1 CANCELLED AT x ***\n*** STEP 1.1 ON n2 FAILED AT y ***\n",
             "SLURM job 1, step 1.1: FAILED on n2");

    /* nothing of SLURM's: -1, the buffer untouched */
    char out[64] = "unchanged";
    CHECK(pmp_slurmtext_summary("", out, sizeof out) == -1);
    CHECK(pmp_slurmtext_summary("mpiexec: error: whatever\nsrun: error: nothing here\n", out,
                                sizeof out) == -1);
    CHECK(strcmp(out, "unchanged") == 0);

    /* truncated and malformed lines */
    s_expect("*** STEP ", "SLURM");
    s_expect("*** STEP 3.0 ON", "SLURM job 3, step 3.0");
    s_expect("*** JOB 4 ON n1 CANCELLED AT x DUE TO", "SLURM job 4: CANCELLED on n1");
    CHECK(pmp_slurmtext_summary("srun: error: Node failure on ", out, sizeof out) == -1);
    CHECK(pmp_slurmtext_summary("srun: error: n2: task 2 and no colon\n", out, sizeof out) == -1);
    /* fields longer than the buffers are cut, not overrun */
    char lng[1024];
    memset(lng, 'x', sizeof lng);
    memcpy(lng, "*** STEP ", 9);
    lng[sizeof lng - 1] = '\0';
    char big[256];
    CHECK(pmp_slurmtext_summary(lng, big, sizeof big) == 0);
    CHECK(strlen(big) < sizeof big);
    /* a small buffer is cut and terminated */
    char small[8];
    memset(small, '#', sizeof small);
    CHECK(pmp_slurmtext_summary("*** STEP 2.0 ON n1 CANCELLED AT x ***", small, sizeof small) == 0);
    CHECK(strcmp(small, "SLURM j") == 0);
    puts("unit.slurmtext: ok");
    return 0;
}
