/* SPDX-License-Identifier: Apache-2.0 */
/*
 * members.c - the member table and everything that changes it: seeds, joins,
 * gossip (MemberList, Join, Leave frames), the dialling of every known member
 * with exponential backoff, the duplicate-connection tie-break, restarts (a new
 * creation), and the snapshot other threads read.
 *
 * Design notes
 * - Full mesh: every member learnt is dialled. Each node decides a member's
 *   liveness from its own link only; gossip adds members (ALIVE or SUSPECT
 *   entries) and spreads LEFT, it never marks a member down. DEAD entries are
 *   never sent.
 * - Gossip: on every new member link both sides send their full list (self
 *   included, which is how an accepting node learns the dialler's address);
 *   afterwards a member whose link comes up is sent as a one-entry delta to every
 *   other member link, so a node that joined through one member reaches all.
 * - Tie-break: two links to one member with the same creation - the one dialled
 *   by the lexically smaller node name survives; both ends compute the same
 *   answer. The loser is closed quietly (no nodedown: the member never went
 *   down). A link from the same name with another creation is a restart: the old
 *   link is closed with nodedown "restarted", the new one comes up.
 * - Backoff: 100 ms doubling to 5 s, each delay +-20% (uniform), reset when the
 *   member comes up. A LEFT member is not redialled; it comes back when it dials
 *   us, is joined again, or is gossiped with a new creation.
 * - Forget (`girder forget`, gr_dist_forget): a member that is not up is
 *   removed from the table, and a one-entry list with its DEAD entry goes to
 *   every member up, which removes it too unless its own link to it is up.
 *   DEAD is sent for nothing else (older nodes ignore it). A member down at
 *   the time keeps the entry and may gossip it back: forget then again. A
 *   forgotten node that dials in later is a member again.
 *
 * Threading: dist thread only; gr_dist_mem_publish copies under pub_lock.
 */
#include "dist/dist_int.h"

#include "proto/err.h"
#include "util/log.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static void on_redial(evutil_socket_t fd, short what, void *arg);

dist_member *gr_dist_mem_find(gr_dist *d, const char *name)
{
    for (dist_member *m = d->members; m; m = m->next) {
        if (strcmp(m->name, name) == 0) {
            return m;
        }
    }
    return NULL;
}

static void set_state(dist_member *m, int state)
{
    if (m->state != state) {
        m->state = state;
        m->since_ms = gr_dist_now_ms();
    }
}

static dist_member *member_new(gr_dist *d, const char *name, const char *host, uint16_t port)
{
    dist_member *m;
    dist_member **tail;

    if (d->nmembers >= DIST_MEMBERS_MAX) {
        gr_warn(DIST_LOG, "member table full (%u): %s ignored", d->nmembers, name);
        return NULL;
    }
    if ((m = calloc(1, sizeof(*m))) == NULL) {
        return NULL;
    }
    d->nmembers++;
    m->d = d;
    snprintf(m->name, sizeof(m->name), "%s", name);
    snprintf(m->host, sizeof(m->host), "%s", host);
    m->port = port;
    m->state = GR_DIST_DOWN;
    m->since_ms = gr_dist_now_ms();
    for (tail = &d->members; *tail; tail = &(*tail)->next) {
    }
    *tail = m;
    return m;
}

static void member_remove(gr_dist *d, dist_member *m)
{
    for (dist_member **p = &d->members; *p; p = &(*p)->next) {
        if (*p == m) {
            *p = m->next;
            d->nmembers--;
            break;
        }
    }
    if (m->redial) {
        event_free(m->redial);
    }
    gr_dist_signal_forget(d, m);
    free(m);
}

int gr_dist_mem_init(gr_dist *d)
{
    dist_member *self = member_new(d, d->name, d->adv_host, 0);

    if (self == NULL) {
        return -ENOMEM;
    }
    self->state = GR_DIST_SELF;
    self->creation = d->creation;
    for (size_t i = 0; i < d->nseeds; i++) {
        if (strcmp(d->seeds[i].node, d->name) == 0) {
            continue;
        }
        if (gr_dist_mem_learn(d, d->seeds[i].node, d->seeds[i].host, d->seeds[i].port) == NULL) {
            return -ENOMEM;
        }
    }
    return 0;
}

void gr_dist_mem_free_all(gr_dist *d)
{
    while (d->members) {
        member_remove(d, d->members);
    }
    while (d->joins) {
        dist_join *j = d->joins;

        d->joins = j->next;
        if (j->timer) {
            event_free(j->timer);
        }
        free(j);
    }
}

dist_member *gr_dist_mem_learn(gr_dist *d, const char *name, const char *host, uint16_t port)
{
    dist_member *m = gr_dist_mem_find(d, name);

    if (m == NULL) {
        return member_new(d, name, host, port);
    }
    if (m->state != GR_DIST_SELF && port != 0 && m->state != GR_DIST_UP &&
        (m->port != port || strcmp(m->host, host) != 0)) {
        snprintf(m->host, sizeof(m->host), "%s", host);
        m->port = port;
    }
    return m;
}

void gr_dist_mem_publish(gr_dist *d)
{
    size_t n = 0, i = 0;
    gr_dist_member *arr;

    for (dist_member *m = d->members; m; m = m->next) {
        n++;
    }
    if ((arr = calloc(n ? n : 1, sizeof(*arr))) == NULL) {
        return; /* the previous snapshot stays */
    }
    for (dist_member *m = d->members; m; m = m->next, i++) {
        snprintf(arr[i].name, sizeof(arr[i].name), "%s", m->name);
        snprintf(arr[i].host, sizeof(arr[i].host), "%s", m->host);
        arr[i].port = m->state == GR_DIST_SELF ? atomic_load(&d->port) : m->port;
        arr[i].creation = m->creation;
        arr[i].state = m->state;
        arr[i].since_ms = m->since_ms;
        arr[i].cipher = m->state == GR_DIST_UP && m->conn ? (int)m->conn->peer.cipher : -1;
    }
    pthread_mutex_lock(&d->pub_lock);
    free(d->pub_members);
    d->pub_members = arr;
    d->pub_nmembers = n;
    pthread_mutex_unlock(&d->pub_lock);
}

/* ---- dialling ---------------------------------------------------------------------- */

/* Arm m's redial timer for ms (jitter is the caller's). */
static void redial_in(gr_dist *d, dist_member *m, unsigned ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    if (m->redial == NULL && (m->redial = evtimer_new(d->base, on_redial, m)) == NULL) {
        return;
    }
    evtimer_add(m->redial, &tv);
}

void gr_dist_mem_dial(gr_dist *d, dist_member *m)
{
    unsigned ms;

    if (d->stopping || m->state == GR_DIST_SELF || m->state == GR_DIST_UP ||
        m->state == GR_DIST_LEFT || m->dial || m->conn || m->port == 0) {
        return;
    }
    if (m->redial) {
        event_del(m->redial);
    }
    if ((ms = gr_dist_dial_delay(d, m)) > 0) { /* paced (detect.c) */
        redial_in(d, m, ms);
        return;
    }
    (void)gr_dist_conn_dial(d, m);
}

static void schedule_redial(gr_dist *d, dist_member *m)
{
    struct timeval tv;
    unsigned ms;

    if (d->stopping || m->state != GR_DIST_DOWN || m->dial || m->port == 0) {
        return;
    }
    if (m->redial == NULL && (m->redial = evtimer_new(d->base, on_redial, m)) == NULL) {
        return;
    }
    m->backoff_ms = m->backoff_ms ? m->backoff_ms * 2 : DIST_BACKOFF_MIN_MS;
    if (m->backoff_ms > DIST_BACKOFF_MAX_MS) {
        m->backoff_ms = DIST_BACKOFF_MAX_MS;
    }
    ms = (unsigned)((uint64_t)m->backoff_ms * (800u + randombytes_uniform(401)) / 1000u);
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(m->redial, &tv);
}

static void on_redial(evutil_socket_t fd, short what, void *arg)
{
    dist_member *m = arg;

    (void)fd;
    (void)what;
    gr_dist_mem_dial(m->d, m);
}

void gr_dist_mem_stop_timers(gr_dist *d)
{
    for (dist_member *m = d->members; m; m = m->next) {
        if (m->redial) {
            event_del(m->redial);
        }
    }
    for (dist_join *j = d->joins; j; j = j->next) {
        if (j->timer) {
            event_del(j->timer);
        }
    }
}

/* ---- joins ------------------------------------------------------------------------- */

static void join_answer_all(gr_dist *d, const char *node, int status)
{
    dist_join **p = &d->joins;

    while (*p) {
        dist_join *j = *p;

        if (node == NULL || strcmp(j->node, node) == 0) {
            *p = j->next;
            gr_dist_answer_join(d, j->reply_to, j->tag, status);
            if (j->timer) {
                event_free(j->timer);
            }
            free(j);
        } else {
            p = &j->next;
        }
    }
}

void gr_dist_mem_fail_joins(gr_dist *d, int err)
{
    join_answer_all(d, NULL, err);
}

static bool join_waiting(gr_dist *d, const char *node)
{
    for (dist_join *j = d->joins; j; j = j->next) {
        if (strcmp(j->node, node) == 0) {
            return true;
        }
    }
    return false;
}

static void on_join_timeout(evutil_socket_t fd, short what, void *arg)
{
    dist_join *j = arg;
    gr_dist *d = j->d;

    (void)fd;
    (void)what;
    for (dist_join **p = &d->joins; *p; p = &(*p)->next) {
        if (*p == j) {
            *p = j->next;
            break;
        }
    }
    gr_info(DIST_LOG, "join %s: %s", j->node, gr_errid(GR_ETIMEOUT));
    gr_dist_answer_join(d, j->reply_to, j->tag, GR_ETIMEOUT);
    event_free(j->timer);
    free(j);
}

void gr_dist_mem_join(gr_dist *d, dist_cmd *cmd)
{
    unsigned ms = cmd->timeout_ms ? cmd->timeout_ms : 2 * GR_DIST_HANDSHAKE_TIMEOUT_MS;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    dist_member *m;
    dist_join *j;
    bool existed;

    if (strcmp(cmd->node, d->name) == 0) {
        gr_dist_answer_join(d, cmd->reply_to, cmd->tag, GR_ENAMECLASH);
        return;
    }
    existed = gr_dist_mem_find(d, cmd->node) != NULL;
    if ((m = gr_dist_mem_learn(d, cmd->node, cmd->host, cmd->port)) == NULL ||
        (j = calloc(1, sizeof(*j))) == NULL) {
        gr_dist_answer_join(d, cmd->reply_to, cmd->tag, -ENOMEM);
        return;
    }
    if (!existed) {
        m->only_join = true;
    }
    if (m->state == GR_DIST_UP) {
        free(j);
        gr_dist_answer_join(d, cmd->reply_to, cmd->tag, 0);
        return;
    }
    j->d = d;
    snprintf(j->node, sizeof(j->node), "%s", cmd->node);
    j->reply_to = cmd->reply_to;
    j->tag = cmd->tag;
    if ((j->timer = evtimer_new(d->base, on_join_timeout, j)) == NULL) {
        free(j);
        gr_dist_answer_join(d, cmd->reply_to, cmd->tag, -ENOMEM);
        return;
    }
    evtimer_add(j->timer, &tv);
    j->next = d->joins;
    d->joins = j;
    if (m->state == GR_DIST_LEFT) {
        set_state(m, GR_DIST_DOWN);
    }
    m->backoff_ms = 0;
    gr_info(DIST_LOG, "joining %s at %s:%u", m->name, m->host, (unsigned)m->port);
    gr_dist_mem_publish(d);
    gr_dist_mem_dial(d, m);
}

/* ---- frames out ---------------------------------------------------------------------- */

static void fill_member(gr_dist *d, const dist_member *m, Girder__Member *out)
{
    girder__member__init(out);
    out->name = (char *)m->name;
    out->host = (char *)(m->state == GR_DIST_SELF ? d->adv_host : m->host);
    out->port = m->state == GR_DIST_SELF ? atomic_load(&d->port) : m->port;
    out->creation = m->creation;
    switch (m->state) {
    case GR_DIST_SELF:
    case GR_DIST_UP:
        out->state = GIRDER__MEMBER_STATE__ALIVE;
        break;
    case GR_DIST_LEFT:
        out->state = GIRDER__MEMBER_STATE__LEFT;
        break;
    default:
        out->state = GIRDER__MEMBER_STATE__SUSPECT;
        break;
    }
}

/* Send the members in list[0..n) on c (one frame). */
static void send_list(gr_dist *d, dist_conn *c, dist_member **list, size_t n, bool full)
{
    Girder__Frame f = GIRDER__FRAME__INIT;
    Girder__MemberList ml = GIRDER__MEMBER_LIST__INIT;
    Girder__Member *mv = calloc(n ? n : 1, sizeof(*mv));
    Girder__Member **mp = calloc(n ? n : 1, sizeof(*mp));

    if (mv && mp) {
        for (size_t i = 0; i < n; i++) {
            fill_member(d, list[i], &mv[i]);
            mp[i] = &mv[i];
        }
        ml.n_members = n;
        ml.members = mp;
        ml.full = full;
        f.msg_case = GIRDER__FRAME__MSG_MEMBERS;
        f.members = &ml;
        (void)gr_dist_conn_send(c, DIST_LANE_CTRL, &(dist_piece){.frame = &f}, 1);
    }
    free(mv);
    free(mp);
}

static void send_full(gr_dist *d, dist_conn *c)
{
    dist_member **list;
    size_t n = 0;

    for (dist_member *m = d->members; m; m = m->next) {
        n++;
    }
    if ((list = calloc(n ? n : 1, sizeof(*list))) == NULL) { /* n >= 1: self */
        return;
    }
    n = 0;
    for (dist_member *m = d->members; m; m = m->next) {
        if (m->state == GR_DIST_SELF || (m->port != 0 && !m->only_join)) {
            list[n++] = m;
        }
    }
    send_list(d, c, list, n, true);
    free(list);
}

/* One-entry delta about m to every member link but m's own. */
static void gossip_delta(gr_dist *d, dist_member *m)
{
    if (m->port == 0) {
        return;
    }
    for (dist_conn *c = d->conns; c; c = c->next) {
        if (c->state == CONN_UP && !c->hidden && c->member && c->member != m &&
            c->member->conn == c) {
            send_list(d, c, &m, 1, false);
        }
    }
}

static void send_join(gr_dist *d, dist_conn *c)
{
    Girder__Frame f = GIRDER__FRAME__INIT;
    Girder__Join jn = GIRDER__JOIN__INIT;
    Girder__Member self;

    fill_member(d, d->members, &self);
    jn.member = &self;
    f.msg_case = GIRDER__FRAME__MSG_JOIN;
    f.join = &jn;
    (void)gr_dist_conn_send(c, DIST_LANE_CTRL, &(dist_piece){.frame = &f}, 1);
}

void gr_dist_mem_leave_all(gr_dist *d)
{
    Girder__Frame f = GIRDER__FRAME__INIT;
    Girder__Leave lv = GIRDER__LEAVE__INIT;

    lv.name = d->name;
    f.msg_case = GIRDER__FRAME__MSG_LEAVE;
    f.leave = &lv;
    for (dist_conn *c = d->conns; c; c = c->next) {
        if (c->state == CONN_UP && !c->hidden) {
            c->drained_close = true;
            (void)gr_dist_conn_send(c, DIST_LANE_CTRL, &(dist_piece){.frame = &f}, 1);
        }
    }
}

/* ---- links up and down ------------------------------------------------------------- */

/* Close c without touching the member's state (a dial no longer wanted). */
static void drop_quietly(dist_member *m, dist_conn *c)
{
    if (m->conn == c) {
        m->conn = NULL;
    }
    if (m->dial == c) {
        m->dial = NULL;
    }
    c->member = NULL;
    gr_dist_conn_close(c, 0, NULL);
}

/* Take c away from m without a state change: a tie-break loser, or a link
 * replaced by a newer one. */
static void retire(dist_member *m, dist_conn *c)
{
    if (m->conn == c) {
        m->conn = NULL;
    }
    if (m->dial == c) {
        m->dial = NULL;
    }
    gr_dist_conn_retire(c);
}

/* Name of the node that dialled c. */
static const char *dialler(gr_dist *d, const dist_conn *c)
{
    return c->outgoing ? d->name : c->peer.name;
}

bool gr_dist_mem_link_up(gr_dist *d, dist_conn *c)
{
    const char *name = c->peer.name;
    const char *at = strchr(name, '@');
    dist_member *m = gr_dist_mem_find(d, name);
    bool was_up;

    if (m == NULL && (m = member_new(d, name, at ? at + 1 : name, 0)) == NULL) {
        gr_dist_conn_close(c, -ENOMEM, NULL);
        return false;
    }
    if (c->outgoing && m->dial == c) {
        m->dial = NULL;
    }
    c->member = m;
    if (m->conn && m->conn != c) {
        dist_conn *old = m->conn;

        if (old->peer.creation != c->peer.creation) {
            gr_log_fields(GR_LOG_INFO, DIST_LOG,
                          (gr_log_field[]){{"event", "member_restarted"}, {"peer", name}}, 2,
                          "%s restarted (creation %u -> %u)", name, old->peer.creation,
                          c->peer.creation);
            gr_dist_conn_close(old, 0, "restarted");
        } else if (old->outgoing != c->outgoing && strcmp(dialler(d, c), dialler(d, old)) > 0) {
            retire(m, c); /* the link dialled by the smaller name stays */
            return false;
        } else {
            retire(m, old); /* the newer link replaces a same-direction one */
        }
    }
    was_up = m->state == GR_DIST_UP;
    m->conn = c;
    m->creation = c->peer.creation;
    m->backoff_ms = 0;
    m->only_join = false;
    if (m->redial) {
        event_del(m->redial);
    }
    set_state(m, GR_DIST_UP);
    gr_dist_signal_node_up(d, m);
    send_full(d, c);
    if (join_waiting(d, name)) {
        send_join(d, c);
    }
    /* publish first: whoever gets the news can read the snapshot at once */
    gr_dist_mem_publish(d);
    if (!was_up) {
        DIST_CTR_ADD(d, members_up, 1);
        gr_dist_notify_up(d, name);
        gossip_delta(d, m);
    }
    join_answer_all(d, name, 0);
    return true;
}

void gr_dist_mem_link_down(gr_dist *d, dist_conn *c, int err, const char *why)
{
    dist_member *m = c->member;

    if (m->dial == c) {
        int status = c->fail ? c->fail : err ? err : GR_ENOCONN;

        m->dial = NULL;
        if (join_waiting(d, m->name)) {
            char name[GR_NODENAME_MAX + 1];

            snprintf(name, sizeof(name), "%s", m->name);
            gr_info(DIST_LOG, "join %s: %s", name, gr_errid(status));
            if (m->only_join && m->creation == 0 && m->conn == NULL) {
                member_remove(d, m);
                gr_dist_mem_publish(d);
                m = NULL;
            }
            join_answer_all(d, name, status);
            if (m == NULL) {
                return;
            }
        }
        schedule_redial(d, m);
        return;
    }
    if (m->conn != c) {
        return;
    }
    m->conn = NULL;
    DIST_CTR_SUB(d, members_up, 1);
    gr_dist_signal_node_down(d, m); /* links and monitors fire "noconnection" */
    if (d->stopping) {
        set_state(m, GR_DIST_DOWN);
        gr_dist_mem_publish(d);
        return;
    }
    set_state(m, c->peer_left ? GR_DIST_LEFT : GR_DIST_DOWN);
    gr_dist_mem_publish(d);
    gr_dist_notify_down(d, m->name, c->peer_left ? "left" : why ? why : "noconnection");
    if (!c->peer_left) {
        schedule_redial(d, m);
    }
}

/* ---- forget ------------------------------------------------------------------------ */

/* Remove m (not up, not self): no redial, no dial in flight, gone from the
 * snapshot. */
static void forget_member(gr_dist *d, dist_member *m)
{
    if (m->dial) {
        drop_quietly(m, m->dial);
    }
    for (dist_conn *c = d->conns, *next; c; c = next) {
        next = c->next;       /* a close moves c to d->dead */
        if (c->member == m) { /* a retired link: it must not outlive its member */
            c->member = NULL;
            gr_dist_conn_close(c, 0, NULL);
        }
    }
    member_remove(d, m);
    gr_dist_mem_publish(d);
}

int gr_dist_mem_forget(gr_dist *d, const char *node)
{
    dist_member *m = gr_dist_mem_find(d, node);
    Girder__Member dead;

    if (m == NULL) {
        return GR_ENOMEMBER;
    }
    if (m->state == GR_DIST_SELF) {
        return GR_EFORGETSELF;
    }
    if (m->state == GR_DIST_UP || m->conn != NULL) {
        return GR_EMEMBERUP;
    }
    /* Tell every member up first (one DEAD entry each): they remove it too,
     * so none of them dials it or gossips it back. */
    fill_member(d, m, &dead);
    dead.state = GIRDER__MEMBER_STATE__DEAD;
    for (dist_conn *c = d->conns; c; c = c->next) {
        if (c->state == CONN_UP && !c->hidden && c->member && c->member->conn == c) {
            Girder__Frame f = GIRDER__FRAME__INIT;
            Girder__MemberList ml = GIRDER__MEMBER_LIST__INIT;
            Girder__Member *mp = &dead;

            ml.n_members = 1;
            ml.members = &mp;
            f.msg_case = GIRDER__FRAME__MSG_MEMBERS;
            f.members = &ml;
            (void)gr_dist_conn_send(c, DIST_LANE_CTRL, &(dist_piece){.frame = &f}, 1);
        }
    }
    gr_info(DIST_LOG, "forgot %s (was %s): no longer dialled", node,
            m->state == GR_DIST_LEFT ? "left" : "down");
    forget_member(d, m);
    return 0;
}

/* ---- frames in --------------------------------------------------------------------- */

static void on_gossip(gr_dist *d, const Girder__Member *mm)
{
    dist_member *m;

    if (strcmp(mm->name, d->name) == 0 || mm->port == 0 || mm->port > 65535) {
        return;
    }
    m = gr_dist_mem_find(d, mm->name);
    switch (mm->state) {
    case GIRDER__MEMBER_STATE__LEFT:
        if (m && m->state == GR_DIST_DOWN && mm->creation >= m->creation) {
            set_state(m, GR_DIST_LEFT);
            if (m->redial) {
                event_del(m->redial);
            }
            if (m->dial) {
                drop_quietly(m, m->dial);
            }
            gr_dist_mem_publish(d);
        }
        return;
    case GIRDER__MEMBER_STATE__DEAD:
        /* Only `girder forget` sends DEAD: the sender removed the member for
         * good. Remove it too unless our own link to it is up (liveness is
         * judged from our own link only) or it came back with a new creation. */
        if (m && m->state != GR_DIST_UP && m->conn == NULL &&
            (mm->creation == 0 || mm->creation >= m->creation)) {
            gr_info(DIST_LOG, "forgot %s (forgotten by a member): no longer dialled", m->name);
            forget_member(d, m);
        }
        return;
    case GIRDER__MEMBER_STATE__ALIVE:
    case GIRDER__MEMBER_STATE__SUSPECT:
        break;
    default:
        return; /* unknown: liveness is judged from our own link only */
    }
    if (m == NULL) {
        if ((m = member_new(d, mm->name, mm->host, (uint16_t)mm->port)) == NULL) {
            return;
        }
        m->gossiped = true; /* its first dial may be left to it (detect.c) */
        gr_log_fields(GR_LOG_INFO, DIST_LOG,
                      (gr_log_field[]){{"event", "member_learnt"}, {"peer", m->name}}, 2,
                      "learnt %s at %s:%u", m->name, m->host, (unsigned)m->port);
        gr_dist_mem_publish(d);
        gr_dist_mem_dial(d, m);
        return;
    }
    m->only_join = false;
    if (m->state == GR_DIST_UP) {
        return;
    }
    if (m->state == GR_DIST_LEFT && mm->state == GIRDER__MEMBER_STATE__ALIVE && mm->creation != 0 &&
        mm->creation != m->creation) {
        set_state(m, GR_DIST_DOWN); /* it came back */
        m->backoff_ms = 0;
    }
    if (m->port == 0 || m->port != mm->port || strcmp(m->host, mm->host) != 0) {
        bool was_unknown = m->port == 0;

        snprintf(m->host, sizeof(m->host), "%s", mm->host);
        m->port = (uint16_t)mm->port;
        if (was_unknown) {
            gr_dist_mem_dial(d, m);
        }
    }
    gr_dist_mem_publish(d);
}

/* Members, Join, Leave from member link c. 0 or an error (close c). */
static int on_frame(dist_conn *c, const Girder__Frame *f)
{
    gr_dist *d = c->d;

    switch (f->msg_case) {
    case GIRDER__FRAME__MSG_MEMBERS:
        for (size_t i = 0; i < f->members->n_members; i++) {
            const Girder__Member *mm = f->members->members[i];

            if (mm == NULL || mm->name == NULL || mm->host == NULL) {
                return GR_EBADFRAME;
            }
            if (c->member && strcmp(mm->name, c->member->name) == 0) {
                /* the peer about itself: where to dial it */
                dist_member *m = c->member;

                if (mm->port > 0 && mm->port <= 65535 &&
                    (m->port != mm->port || strcmp(m->host, mm->host) != 0)) {
                    snprintf(m->host, sizeof(m->host), "%s", mm->host);
                    m->port = (uint16_t)mm->port;
                    m->only_join = false;
                    /* now that it can be dialled, tell the others */
                    gossip_delta(d, m);
                    gr_dist_mem_publish(d);
                }
                continue;
            }
            on_gossip(d, mm);
        }
        return 0;
    case GIRDER__FRAME__MSG_JOIN: {
        const Girder__Member *mm = f->join->member;

        if (mm == NULL || mm->name == NULL || mm->host == NULL) {
            return GR_EBADFRAME;
        }
        gr_log_fields(GR_LOG_INFO, DIST_LOG,
                      (gr_log_field[]){{"event", "member_join"}, {"peer", mm->name}}, 2,
                      "%s joins via this node", mm->name);
        if (c->member && strcmp(mm->name, c->member->name) == 0 && mm->port > 0 &&
            mm->port <= 65535) {
            snprintf(c->member->host, sizeof(c->member->host), "%s", mm->host);
            c->member->port = (uint16_t)mm->port;
            gossip_delta(d, c->member);
            gr_dist_mem_publish(d);
        } else {
            on_gossip(d, mm);
        }
        return 0;
    }
    case GIRDER__FRAME__MSG_LEAVE:
        if (c->member && f->leave->name && strcmp(f->leave->name, c->member->name) == 0) {
            gr_log_fields(GR_LOG_INFO, DIST_LOG,
                          (gr_log_field[]){{"event", "member_leave"}, {"peer", c->member->name}}, 2,
                          "%s leaves", c->member->name);
            c->peer_left = true;
            gr_dist_conn_close(c, 0, "left");
        }
        return 0;
    default:
        return 0;
    }
}

static void on_member_up(dist_conn *c)
{
    (void)gr_dist_mem_link_up(c->d, c);
}

static void on_closed(dist_conn *c, int err, const char *why)
{
    if (c->member) {
        gr_dist_mem_link_down(c->d, c, err, why);
    }
}

/* Membership: its kinds come from members only (a hidden client never is one). */
static const dist_kind mem_kinds[] = {
    {.kind = GIRDER__FRAME__MSG_MEMBERS, .members_only = true, .on_frame = on_frame},
    {.kind = GIRDER__FRAME__MSG_JOIN, .members_only = true, .on_frame = on_frame},
    {.kind = GIRDER__FRAME__MSG_LEAVE, .members_only = true, .on_frame = on_frame},
};

const dist_proto gr_dist_mem_proto = {
    .name = "members",
    .kinds = mem_kinds,
    .nkinds = sizeof(mem_kinds) / sizeof(mem_kinds[0]),
    .member_up = on_member_up,
    .closed = on_closed,
};
