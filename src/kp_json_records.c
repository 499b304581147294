/*
 * kp_json_records.c -- the walk over a response's envelope: the top-level
 * object, its members, and the records array one element at a time, with
 * the shape checks of kp_json_opts.records.  Everything inside a member or
 * a record is the parser's (kp_json.c) or the projection's (kp_json_proj.c).
 *
 * The walk can stop between two records (or two top-level members) once a
 * time budget has run out, and resume later where it stopped: that spreads
 * the decode of a large response over several calls, a host's frames for
 * instance.  A one-shot decode is the same walk with no budget, so the two
 * cannot differ in what they build or in which error they report where.
 *
 * Between calls the walk's place is a stage and a byte offset; what it has
 * built (the top-level table, the records member's key and its array)
 * waits in a table the caller owns, so the GC owns it, and nothing in C
 * points into it.
 *
 * The collector: records written one by one into a table it has already
 * marked make that table "gray again" (Lua's barrier back), and everything
 * written into it since is then marked in one go, in the collector's
 * atomic step: at 10 000 offers that one step took 30 to 50 ms, whatever
 * the budget.  So after the first suspension, each step puts its records
 * in a fresh chunk, and chains the chunk by setting an upvalue of the last
 * link (a forward barrier: a marked link marks the new one at once, and
 * the collector traverses it incrementally, in its own steps).  The array
 * gets the chunks' records when it closes.
 */
#include "kp_json_int.h"

const char kpj_suspended = 's';

enum { STAGE_START, STAGE_MEMBERS, STAGE_RECORDS };

/* The partial values' slots in the caller's table, also their order on
 * the stack while a step runs. */
enum { SLOT_ROOT = 1, SLOT_KEY, SLOT_ARRAY, NSLOTS = SLOT_ARRAY };

/* Beyond those, in the caller's table only: the first and the last link of
 * the chain of chunks (C closures with upvalues chunk, next). */
enum { SLOT_HEAD = NSLOTS + 1, SLOT_TAIL, NSLOTS_ALL = SLOT_TAIL };

/* A link of the chain: never called, only its upvalues matter. */
static int chunk_link(lua_State *L) {
  (void)L;
  return 0;
}

/* Chain the chunk at -1 (popped) after the last link. */
static void link_chunk(lua_State *L, int state) {
  lua_pushboolean(L, 0);
  lua_pushcclosure(L, chunk_link, 2);           /* link: chunk, next */
  if (lua_rawgeti(L, state, SLOT_TAIL) == LUA_TFUNCTION) {
    lua_pushvalue(L, -2);
    lua_setupvalue(L, -2, 2);                   /* tail.next = link: forward */
  } else {
    lua_pushvalue(L, -2);
    lua_rawseti(L, state, SLOT_HEAD);
  }
  lua_pop(L, 1);
  lua_rawseti(L, state, SLOT_TAIL);
}

/* The chained records, then those of the chunk at -1 (popped), into the
 * array at -2 after its first `from` records; the chain is let go. */
static void gather(lua_State *L, int state, lua_Integer from) {
  lua_Integer n = from, i, k;
  lua_rawgeti(L, state, SLOT_HEAD);
  while (lua_type(L, -1) == LUA_TFUNCTION) {
    lua_getupvalue(L, -1, 1);                   /* chunk */
    k = (lua_Integer)lua_rawlen(L, -1);
    for (i = 1; i <= k; i++) {                  /* value, chunk, link, this chunk, array */
      kp_rawgeti(L, -1, i);
      lua_rawseti(L, -5, ++n);
    }
    lua_pop(L, 1);
    lua_getupvalue(L, -1, 2);                   /* next */
    lua_remove(L, -2);
  }
  lua_pop(L, 1);
  k = (lua_Integer)lua_rawlen(L, -1);
  for (i = 1; i <= k; i++) {
    kp_rawgeti(L, -1, i);
    lua_rawseti(L, -3, ++n);
  }
  lua_pop(L, 1);
  lua_pushboolean(L, 0);
  lua_rawseti(L, state, SLOT_HEAD);
  lua_pushboolean(L, 0);
  lua_rawseti(L, state, SLOT_TAIL);
}

/* Whether to stop before the next member or record: only once this step
 * has made progress, so every step moves the walk on. */
static int out_of_time(kpj_walk *w) {
  if (w->deadline < 0)
    return 0;
  if (!w->progress) {
    w->progress = 1;
    return 0;
  }
  return kp_monotonic_ms() >= w->deadline;
}

static const char *suspend(kpj_decoder *d, kpj_walk *w, const char *p,
                           int stage) {
  w->s->stage = stage;
  w->s->pos = (size_t)(p - d->start);
  return KPJ_SUSPENDED;
}

/* The records array is complete: into the top-level table (at -3). */
static void close_records(kpj_decoder *d, kp_json_slicer *s) {
  if (s->node < 0)
    d->mem->hints[s->slot].narr = kpj_clamp_hint(s->n);
  d->depth--;
  lua_rawset(d->L, -3);
  s->stage = STAGE_MEMBERS;
}

/* The records member's array, p just after its '['; the key is at -1. */
static const char *open_records(kpj_decoder *d, kpj_walk *w, const char *p,
                                const char *k, size_t kn) {
  kp_json_slicer *s = w->s;
  int more;
  s->n = 0;
  if (d->paths != NULL) {
    s->node = kpj_proj_records_node(d, k, kn);
  } else {
    s->node = -1;
  }
  s->slot = kpj_key_slot(k, kn, d->depth);
  if (kpj_enter(d, p - 1) == NULL)
    return NULL;
  /* decoded whole, like any array: sized by the last one at this position */
  lua_createtable(d->L, s->node < 0 ? (int)d->mem->hints[s->slot].narr : 0, 0);
  p = kpj_open_items(p, ']', &more);
  if (more)
    s->stage = STAGE_RECORDS;
  else
    close_records(d, s);
  return p;
}

/* Records until the array closes or time runs out; the array at -1, its
 * key at -2, the top-level table at -3.  After the first suspension, into
 * a chunk of this step (see the header). */
static const char *records(kpj_decoder *d, kpj_walk *w, const char *p) {
  kp_json_slicer *s = w->s;
  lua_State *L = d->L;
  int more = 1, chunk = s->chunks;
  lua_Integer k = 0;
  if (chunk)
    lua_createtable(L, 64, 0);                  /* this step's chunk, at -1 */
  while (more) {
    if (out_of_time(w)) {
      if (chunk) {
        link_chunk(L, w->state);
      } else {
        s->direct = s->n;
        s->chunks = 1;
      }
      return suspend(d, w, p, STAGE_RECORDS);
    }
    if (kpj_check_record(d, p) == NULL)
      return NULL;
    if (s->node < 0)
      p = kpj_parse_value(d, p, KPJ_ELEMENT_SLOT(s->slot));
    else
      p = kpj_proj_record(d, p, s->node);
    if (p == NULL)
      return NULL;
    if (d->meta != 0) {                         /* records are objects */
      lua_pushvalue(L, d->meta);
      lua_setmetatable(L, -2);
    }
    lua_rawseti(L, -2, chunk ? ++k : s->n + 1);
    s->n++;
    if ((p = kpj_separator(d, p, ']', &more)) == NULL)
      return NULL;
  }
  if (chunk)
    gather(L, w->state, s->direct);
  close_records(d, s);
  return p;
}

/* One top-level member, p on its key; the top-level table at -1.  The
 * records member's array is opened here and filled by records(). */
static const char *member(kpj_decoder *d, kpj_walk *w, const char *p) {
  const char *k;
  size_t kn;
  if ((p = kpj_member_key(d, p, &k, &kn)) == NULL)
    return NULL;
  w->s->members++;
  if (kpj_is_records(d, k, kn)) {
    if (kpj_check_records(d, p) == NULL)
      return NULL;
    if (*p == '[') {
      kpj_push_member_key(d, k, kn);
      return open_records(d, w, p + 1, k, kn);
    }
  }
  return d->paths != NULL ? kpj_proj_member(d, p, 0, 1, k, kn)
                          : kpj_parse_member(d, p, k, kn);
}

/*
 * The walk from where w->s says, p at the top-level '{' on the first step;
 * the partial values on the stack as their slots say.  Returns the cursor
 * after the top-level object (with only its table left on the stack), NULL
 * on an error, or KPJ_SUSPENDED with the partial values left on the stack.
 */
static const char *walk(kpj_decoder *d, kpj_walk *w, const char *p) {
  kp_json_slicer *s = w->s;
  int more = 1;
  switch (s->stage) {
  case STAGE_START:
    if (kpj_enter(d, p) == NULL)
      return NULL;
    lua_createtable(d->L, 0, (int)d->mem->hints[0].nrec);
    p = kpj_open_items(p + 1, '}', &more);
    s->stage = STAGE_MEMBERS;
    break;
  case STAGE_MEMBERS:
    d->depth = 1;
    break;
  default:
    d->depth = 2;
    break;
  }
  while (more) {
    if (s->stage == STAGE_RECORDS) {
      if ((p = records(d, w, p)) == NULL || p == KPJ_SUSPENDED)
        return p;
    } else {
      if (out_of_time(w))
        return suspend(d, w, p, STAGE_MEMBERS);
      if ((p = member(d, w, p)) == NULL)
        return NULL;
      if (s->stage == STAGE_RECORDS)
        continue;               /* the array is open: its records next */
    }
    if ((p = kpj_separator(d, p, '}', &more)) == NULL)
      return NULL;
  }
  d->mem->hints[0].nrec = kpj_clamp_hint((lua_Integer)s->members);
  d->depth--;
  return p;
}

/* How many partial values a stage keeps. */
static int kept(int stage) {
  return stage == STAGE_RECORDS ? NSLOTS : stage == STAGE_MEMBERS ? SLOT_ROOT : 0;
}

const char *kpj_walk_step(kpj_decoder *d, kpj_walk *w, int state) {
  lua_State *L = d->L;
  kp_json_slicer *s = w->s;
  const char *p;
  int i, n = kept(s->stage);
  for (i = 1; i <= n; i++)
    lua_rawgeti(L, state, i);
  p = walk(d, w, s->stage == STAGE_START ? kpj_skip_ws(d->start)
                                         : d->start + s->pos);
  if (p == KPJ_SUSPENDED) {
    /* into slots that exist already: no allocation */
    for (i = n = kept(s->stage); i >= 1; i--)
      lua_rawseti(L, state, i);
  } else if (state != 0) {
    for (i = 1; i <= NSLOTS_ALL; i++) { /* done: let them go */
      lua_pushboolean(L, 0);
      lua_rawseti(L, state, i);
    }
  }
  return p;
}

void kp_json_push_slices(lua_State *L) {
  int i;
  lua_createtable(L, NSLOTS_ALL, 0);
  for (i = 1; i <= NSLOTS_ALL; i++) {
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, i);
  }
}

void kp_json_slicer_init(kp_json_slicer *s) {
  memset(s, 0, sizeof *s);
  s->stage = STAGE_START;
}

int kp_json_slicer_busy(const kp_json_slicer *s) {
  return s->stage != STAGE_START;
}

double kpj_deadline(double budget_ms) {
  return budget_ms < 0 ? -1 : kp_monotonic_ms() + budget_ms;
}
