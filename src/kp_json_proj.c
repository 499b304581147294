/*
 * kp_json_proj.c -- projection: the trie built from a list of dotted paths
 * (kp_json_paths), and the walk that decodes only what it names, skipping
 * the rest with the strict parser's own grammar (kp_json.c).
 *
 * A trie node says which members of an object to keep: a leaf keeps the
 * whole value, an inner node descends.  Arrays are transparent: their
 * elements are projected with the array's node.  Above the first record
 * (while `envelope` is set) members no path names that hold a container are
 * descended too, so { "financeOffers": [ … ] } needs no "financeOffers" in
 * the paths; inside a record, unnamed members are skipped without building
 * anything.
 */
#include <string.h>
#include "kp_json_int.h"

#define MAX_PATHS 256
#define MAX_PATH_LEN 1024

static int find_child(const kp_json_path *t, int node, const char *k, size_t n) {
  int c;
  for (c = t[node].child; c >= 0; c = t[c].next)
    if (t[c].len == n && memcmp(t[c].key, k, n) == 0)
      return c;
  return -1;
}

static const char *proj_object(kpj_decoder *d, const char *p, int node,
                               int envelope);
static const char *proj_array(kpj_decoder *d, const char *p, int node);

/*
 * One member of an object projected with node, p on its value, k its key:
 * set in the table at -1 (key and value pushed here), or skipped.
 */
static KPJ_FLATTEN const char *member(kpj_decoder *d, const char *p, int node,
                                      int envelope, const char *k, size_t kn) {
  lua_State *L = d->L;
  const kp_json_path *t = d->paths;
  int c = find_child(t, node, k, kn);
  if (c >= 0 && t[c].leaf) {
    unsigned slot = kpj_key_slot(k, kn, d->depth);
    /* a null still clears an earlier duplicate */
    kpj_push_member_key(d, k, kn);
    if ((p = kpj_parse_value(d, p, slot)) == NULL)
      return NULL;
    if (lua_type(L, -1) == LUA_TLIGHTUSERDATA) {
      lua_pop(L, 1);
      lua_pushnil(L);
    }
    lua_rawset(L, -3);
  } else if (c >= 0 || envelope) {
    int next = c >= 0 ? c : node;
    kpj_push_member_key(d, k, kn);
    if (*p == '{') {
      p = proj_object(d, p + 1, next, c < 0);
    } else if (*p == '[') {
      p = proj_array(d, p + 1, next);
    } else {
      /* nothing to select in a scalar: like the full decode's last
       * occurrence, it leaves the key absent */
      p = kpj_skip_value(d, p);
      lua_pushnil(L);
    }
    if (p == NULL)
      return NULL;
    lua_rawset(L, -3);
  } else {
    p = kpj_skip_value(d, p);
  }
  return p;
}

/* p is just after '{'; always pushes a table. */
static const char *proj_object(kpj_decoder *d, const char *p, int node,
                               int envelope) {
  int more;
  if (kpj_enter(d, p - 1) == NULL)
    return NULL;
  lua_createtable(d->L, 0, 0);
  for (p = kpj_open_items(p, '}', &more); more;) {
    const char *k;
    size_t kn;
    if ((p = kpj_member_key(d, p, &k, &kn)) == NULL ||
        (p = member(d, p, node, envelope, k, kn)) == NULL ||
        (p = kpj_separator(d, p, '}', &more)) == NULL)
      return NULL;
  }
  /* an object none of whose members was selected is still an object */
  kpj_mark_if_empty(d->L);
  d->depth--;
  return p;
}

/* p is just after '['; always pushes a table.  Elements that are not
 * containers have nothing a path could select: they are kept as they are
 * (null as core.null), so that each element keeps its place. */
static const char *proj_array(kpj_decoder *d, const char *p, int node) {
  lua_State *L = d->L;
  lua_Integer n = 0;
  int more;
  if (kpj_enter(d, p - 1) == NULL)
    return NULL;
  lua_createtable(L, 0, 0);
  for (p = kpj_open_items(p, ']', &more); more;) {
    if (*p == '{')
      p = proj_object(d, p + 1, node, 0);
    else if (*p == '[')
      p = proj_array(d, p + 1, node);
    else
      p = kpj_parse_value(d, p, 0);
    if (p == NULL)
      return NULL;
    lua_rawseti(L, -2, ++n);
    if ((p = kpj_separator(d, p, ']', &more)) == NULL)
      return NULL;
  }
  d->depth--;
  return p;
}

const char *kpj_proj_root(kpj_decoder *d, const char *p) {
  return *p == '[' ? proj_array(d, p + 1, 0) : proj_object(d, p + 1, 0, 1);
}

const char *kpj_proj_member(kpj_decoder *d, const char *p, int node,
                            int envelope, const char *k, size_t kn) {
  return member(d, p, node, envelope, k, kn);
}

int kpj_proj_records_node(const kpj_decoder *d, const char *k, size_t kn) {
  int c = find_child(d->paths, 0, k, kn);
  if (c >= 0 && d->paths[c].leaf)
    return -1;
  return c >= 0 ? c : 0;
}

const char *kpj_proj_record(kpj_decoder *d, const char *p, int node) {
  return *p == '{' ? proj_object(d, p + 1, node, 0) : kpj_skip_value(d, p);
}

/*
 * Build the trie for a list of dotted paths (the Lua array at idx) in one
 * userdata pushed on the stack, so the GC owns it: the nodes, then a copy
 * of the segments' bytes that the nodes' keys point into.
 *
 * Any allocation may run a finalizer, and a finalizer may change the list
 * or drop its strings.  So each entry is read once, with no allocation in
 * between: the strings stay on the stack (anchored) while the nodes are
 * counted, the userdata is allocated, and the trie is built from them.
 * Nothing is kept that points into the caller's strings.
 */
const kp_json_path *kp_json_paths(lua_State *L, int idx) {
  kp_json_path *t;
  char *bytes;
  lua_Integer i, npaths;
  size_t nodes = 1, nbytes = 0;
  int base, used = 1;
  idx = lua_absindex(L, idx);
  luaL_checktype(L, idx, LUA_TTABLE);
  npaths = (lua_Integer)lua_rawlen(L, idx);
  if (npaths < 1 || npaths > MAX_PATHS)
    luaL_error(L, "fields: expected a list of 1 to %d paths", MAX_PATHS);
  /* May allocate: done before any entry is read. */
  luaL_checkstack(L, (int)npaths + 2, "fields");
  base = lua_gettop(L);
  for (i = 1; i <= npaths; i++) {
    size_t n, j;
    const char *s;
    if (lua_rawgeti(L, idx, i) != LUA_TSTRING)   /* no number coercion */
      luaL_error(L, "fields: bad path #%d (string expected)", (int)i);
    s = lua_tolstring(L, -1, &n);
    if (n == 0 || n > MAX_PATH_LEN ||
        s[0] == '.' || s[n - 1] == '.' || strstr(s, "..") != NULL ||
        strlen(s) != n)
      luaL_error(L, "fields: bad path #%d (dotted names expected, e.g. "
                    "\"customer.lastName\")", (int)i);
    for (j = 0; j < n; j++)
      nodes += s[j] == '.';
    nodes++;
    nbytes += n;
  }
  t = (kp_json_path *)kp_newuserdata(L, nodes * sizeof *t + nbytes);
  bytes = (char *)(t + nodes);
  t[0].key = NULL;
  t[0].len = 0;
  t[0].child = t[0].next = -1;
  t[0].leaf = 0;
  for (i = 1; i <= npaths; i++) {
    size_t n;
    const char *s = lua_tolstring(L, base + (int)i, &n);
    int node = 0;
    for (;;) {
      const char *e = (const char *)memchr(s, '.', n);
      size_t seg = e ? (size_t)(e - s) : n;
      int c;
      if ((c = find_child(t, node, s, seg)) < 0) {
        c = used++;
        memcpy(bytes, s, seg);
        t[c].key = bytes;
        bytes += seg;
        t[c].len = seg;
        t[c].child = -1;
        t[c].leaf = 0;
        t[c].next = t[node].child;
        t[node].child = c;
      }
      node = c;
      if (e == NULL)
        break;
      n -= seg + 1;
      s = e + 1;
    }
    t[node].leaf = 1;
  }
  lua_replace(L, base + 1);     /* the trie takes the first string's slot; */
  lua_settop(L, base + 1);      /* the others go */
  return t;
}
