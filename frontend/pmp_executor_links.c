/*
 * pmp_executor_links.c - the I/O thread's local links: the connections of
 * the groups that run on this host (pmp_link.h), from the accept to the
 * close.  Part of the executor (pmp_executor_internal.h); the messages a
 * link carries are handled by pmp_executor_io_on_message like those that
 * come over ZeroMQ.
 *
 * A connection's life.  The listening socket (pmp_endpoint) is polled with
 * everything else; pmp_endpoint_accept() refuses a process of another
 * user.  The new connection waits among the pending ones, with a limit of
 * PMP_LINK_GREETING_MAX bytes per frame, until its first message: the
 * greeting, judged by pmp_endpoint_admit_link() like a PLAIN handshake
 * (refused: logged and closed; a stranger never hears a byte).  Admitted,
 * it may send frames of any length, and its next message must be the
 * HELLO, which makes it a group under the identity 'L' + a counter (the
 * group table keys groups by identity, as for ZeroMQ peers); anything
 * else closes it.  From then on the link is the group's: read whenever it
 * is readable, written by s_send_locked (pmp_executor_io.c) under the
 * mutex, and polled for POLLOUT while output waits.  Its end (EOF: the
 * leader closed or died) goes to pmp_executor_io_link_lost() unless the
 * group said goodbye before; a group that said goodbye has its link
 * closed at once.
 *
 * Poll items.  pmp_executor_links_pollitems() writes, next to each item,
 * what it stands for (slots: a link and its group, or a pending
 * connection), so that serving them does not depend on the tables
 * staying as they were while messages are handled.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmp_executor_internal.h"

struct pmp_executor_pending {
    pmp_link_t *link;
    int admitted; /* the greeting was right: the HELLO comes next */
    uint32_t serial;
};

struct pmp_executor_slot {
    pmp_link_t *link;
    size_t group; /* SIZE_MAX: a pending connection */
};

size_t pmp_executor_links_count(const pmp_executor_t *self)
{
    return 1 + self->npending + self->ngroups;
}

static void s_slot(pmp_executor_t *self, pmp_link_t *link, size_t group)
{
    if (self->nslots == self->slots_cap) {
        size_t cap = self->slots_cap ? self->slots_cap * 2 : 16;
        struct pmp_executor_slot *slots = realloc(self->slots, cap * sizeof *slots);
        PMP_ASSERT(slots != NULL);
        self->slots = slots;
        self->slots_cap = cap;
    }
    self->slots[self->nslots++] = (struct pmp_executor_slot){.link = link, .group = group};
}

int pmp_executor_links_pollitems(pmp_executor_t *self, zmq_pollitem_t *items)
{
    int n = 0;
    self->nslots = 0;
    int lfd = pmp_endpoint_listen_fd(self->endpoint);
    if (lfd < 0)
        return 0;
    items[n++] = (zmq_pollitem_t){.fd = lfd, .events = ZMQ_POLLIN};
    s_slot(self, NULL, SIZE_MAX);
    for (size_t i = 0; i < self->npending; i++) {
        items[n++] =
            (zmq_pollitem_t){.fd = pmp_link_fd(self->pending[i].link), .events = ZMQ_POLLIN};
        s_slot(self, self->pending[i].link, SIZE_MAX);
    }
    for (size_t gi = 0; gi < self->ngroups; gi++) {
        pmp_link_t *link = self->groups[gi].link;
        if (!link)
            continue;
        short events = ZMQ_POLLIN;
        if (pmp_link_unsent(link))
            events |= ZMQ_POLLOUT;
        items[n++] = (zmq_pollitem_t){.fd = pmp_link_fd(link), .events = events};
        s_slot(self, link, gi);
    }
    return n;
}

/* Closes pending connection i (refused, broken, or done). */
static void s_drop_pending(pmp_executor_t *self, size_t i)
{
    pmp_link_destroy(&self->pending[i].link);
    self->pending[i] = self->pending[--self->npending];
}

static size_t s_find_pending(const pmp_executor_t *self, const pmp_link_t *link)
{
    for (size_t i = 0; i < self->npending; i++)
        if (self->pending[i].link == link)
            return i;
    return SIZE_MAX;
}

/* Reads pending connection i: its greeting, then its HELLO. */
static void s_serve_pending(pmp_executor_t *self, size_t i)
{
    struct pmp_executor_pending *p = &self->pending[i];
    char peer[48];
    snprintf(peer, sizeof peer, "local connection %u", (unsigned)p->serial);
    zmq_msg_t *parts;
    size_t n;
    int rc = pmp_link_recv(p->link, &parts, &n);
    if (rc == 0)
        return;
    if (rc < 0) {
        if (!p->admitted || errno != ECONNRESET)
            pmp_endpoint_admit_link(self->endpoint, NULL, 0, peer); /* logged as refused */
        s_drop_pending(self, i);
        return;
    }
    if (!p->admitted) {
        int one = n == 1; /* a greeting is one frame */
        if (pmp_endpoint_admit_link(self->endpoint, one ? zmq_msg_data(&parts[0]) : NULL,
                                    one ? zmq_msg_size(&parts[0]) : 0, peer) < 0) {
            s_drop_pending(self, i);
            return;
        }
        p->admitted = 1;
        pmp_link_set_max_frame(p->link, PMP_LINK_MAX_FRAME);
        s_serve_pending(self, i); /* the HELLO may have come with it */
        return;
    }
    unsigned char id[5] = {'L'};
    memcpy(id + 1, &p->serial, sizeof p->serial);
    pmp_link_t *link = p->link;
    size_t before = self->ngroups;
    pmp_executor_io_on_message(self, NULL, id, sizeof id, link, parts, n);
    if (self->ngroups > before && self->groups[self->ngroups - 1].link == link) {
        self->pending[i] = self->pending[--self->npending]; /* the group's now */
        return;
    }
    pmp_log(PMP_LOG_WARNING, "frontend: closed %s: its first message was not a hello", peer);
    s_drop_pending(self, i);
}

/* Reads and writes group gi's link. */
static void s_serve_group(pmp_executor_t *self, size_t gi, short revents, int max_msgs)
{
    pmp_executor_group_t *g = &self->groups[gi];
    if ((revents & ZMQ_POLLOUT) && pmp_link_flush(g->link) < 0)
        revents |= ZMQ_POLLIN; /* the read below sees the end */
    if (!(revents & (ZMQ_POLLIN | ZMQ_POLLERR)))
        return;
    for (int k = 0; k < max_msgs && g->link; k++) {
        zmq_msg_t *parts;
        size_t n;
        int rc = pmp_link_recv(g->link, &parts, &n);
        if (rc == 0)
            return;
        if (rc < 0) {
            if (errno != ECONNRESET)
                pmp_log(PMP_LOG_WARNING, "frontend: the link of group %d failed: %s",
                        (int)g->hello.group, strerror(errno));
            pmp_executor_io_link_lost(self, g);
            pmp_link_destroy(&g->link);
            return;
        }
        pmp_executor_io_on_message(self, g, g->identity, g->identity_size, g->link, parts, n);
        if (g->gone && pmp_link_unsent(g->link) == 0)
            pmp_link_destroy(&g->link); /* said goodbye (or lost): nothing more to read */
    }
}

void pmp_executor_links_serve(pmp_executor_t *self, const zmq_pollitem_t *items, int max_msgs)
{
    size_t nslots = self->nslots;
    for (size_t k = 1; k < nslots; k++) {
        if (!items[k].revents)
            continue;
        struct pmp_executor_slot s = self->slots[k];
        if (s.group == SIZE_MAX) {
            size_t i = s_find_pending(self, s.link);
            if (i != SIZE_MAX)
                s_serve_pending(self, i);
        } else if (s.group < self->ngroups && self->groups[s.group].link == s.link) {
            s_serve_group(self, s.group, items[k].revents, max_msgs);
        }
    }
    if (nslots == 0 || !items[0].revents)
        return;
    for (;;) {
        int fd = pmp_endpoint_accept(self->endpoint);
        if (fd < 0)
            return;
        if (self->npending == self->pending_cap) {
            size_t cap = self->pending_cap ? self->pending_cap * 2 : 8;
            struct pmp_executor_pending *p = realloc(self->pending, cap * sizeof *p);
            PMP_ASSERT(p != NULL);
            self->pending = p;
            self->pending_cap = cap;
        }
        pmp_link_t *link = pmp_link_new(fd, PMP_LINK_GREETING_MAX);
        PMP_ASSERT(link != NULL);
        self->pending[self->npending++] =
            (struct pmp_executor_pending){.link = link, .serial = ++self->links_accepted};
    }
}

void pmp_executor_links_close(pmp_executor_t *self, int linger_ms)
{
    for (size_t gi = 0; gi < self->ngroups; gi++) {
        pmp_executor_group_t *g = &self->groups[gi];
        if (g->link && linger_ms > 0)
            pmp_link_flush_wait(g->link, linger_ms);
        pmp_link_destroy(&g->link);
    }
    while (self->npending)
        s_drop_pending(self, self->npending - 1);
    free(self->pending);
    self->pending = NULL;
    self->pending_cap = 0;
    free(self->slots);
    self->slots = NULL;
    self->nslots = self->slots_cap = 0;
}
