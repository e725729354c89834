/*
** skywasm: a new string-hash seed for a Lua state built with a fixed one.
**
** The state every snlua service starts from is built once and snapshotted, so its seed
** (luai_makeseed, fixed in build.rs) is the same in every service: whoever knows it can
** make table keys that all collide. After the snapshot is instantiated, each service calls
** skywasm_lua_reseed with random bits, and strings made from then on hash with the new
** seed. The snapshot's strings are not written: short ones keep their hash (the patched
** lstring.c looks a short string up under both seeds), long ones that were never hashed
** start from the new seed when they are (luaS_movelongseed). So the snapshot's pages stay
** shared, and a reseed costs almost nothing: when the snapshot is made, its long strings
** forget their hashes, and only the few tables keyed by one (noted then) are rebuilt by a
** reseed. Keys an attacker sends are new strings, placed by the new seed.
*/

#include "lua.h"
#include "lgc.h"
#include "lobject.h"
#include "lstate.h"
#include "lstring.h"
#include "ltable.h"

void luaS_movelongseed (unsigned int from, unsigned int to);

/*
** The tables keyed by a long string, noted when the snapshot is made, so that a reseed
** need not walk every object (reading the whole heap makes much of it each service's
** own). Between the snapshot and the reseed no Lua code runs and nothing is collected, so
** the pointers stay good. When there are more than fit, or no snapshot was noted, the
** reseed walks every object.
*/
#define MAX_NOTED 64
static Table *noted_tables[MAX_NOTED];
static int n_noted_tables;
static int noted = 0;  /* whether the list holds all there are */

/* Whether a table has a long string as a key (whose position the new seed changes). */
static int has_long_key (Table *t) {
  unsigned int i;
  if (isdummy(t))
    return 0;
  for (i = 0; i < sizenode(t); i++) {
    if (keytt(gnode(t, i)) == ctb(LUA_VLNGSTR))
      return 1;
  }
  return 0;
}

/* Notes one GC list's tables keyed by a long string; 0 when they overflow. */
static int note_tables (GCObject *o) {
  for (; o != NULL; o = o->next) {
    if (o->tt == LUA_VTABLE && has_long_key(gco2t(o))) {
      if (n_noted_tables == MAX_NOTED)
        return 0;
      noted_tables[n_noted_tables++] = gco2t(o);
    }
  }
  return 1;
}

/* Long strings of one GC list forget their hash: it is computed again, from the state's
   seed, when needed (a table keyed by one must then be rebuilt). */
static void forget_long_hashes (global_State *g, GCObject *o) {
  for (; o != NULL; o = o->next) {
    if (o->tt == LUA_VLNGSTR && gco2ts(o)->extra) {
      TString *ts = gco2ts(o);
      ts->hash = g->seed;  /* the seed a long string's hash starts from */
      ts->extra = 0;
    }
  }
}

/* Tables of one GC list keyed by a long string are rebuilt where the new hashes put them. */
static void rebuild_long_keyed (lua_State *L, GCObject *o) {
  for (; o != NULL; o = o->next) {
    if (o->tt == LUA_VTABLE && has_long_key(gco2t(o))) {
      Table *t = gco2t(o);
      luaH_resize(L, t, luaH_realasize(t), allocsizenode(t));
    }
  }
}

/* The GC lists of a state. */
static void gc_lists (global_State *g, GCObject *lists[4]) {
  lists[0] = g->allgc;
  lists[1] = g->finobj;
  lists[2] = g->tobefnz;
  lists[3] = g->fixedgc;
}

/* Called on the state a snapshot is made of: what a reseed would write there, done once. */
void skywasm_lua_note_snapshot (lua_State *L) {
  global_State *g = G(L);
  GCObject *lists[4];
  int i;
  gc_lists(g, lists);
  for (i = 0; i < 4; i++)
    forget_long_hashes(g, lists[i]);
  n_noted_tables = 0;
  noted = 1;
  for (i = 0; i < 4 && noted; i++)
    noted = note_tables(lists[i]);
}

/* Once per state: a second seed would lose the strings hashed with the first new one. */
void skywasm_lua_reseed (lua_State *L, unsigned int seed) {
  global_State *g = G(L);
  GCObject *lists[4];
  int i;
  if (g->reseeded)
    return;
  g->oldseed = g->seed;
  g->seed = seed;
  g->reseeded = 1;
  luaS_movelongseed(g->oldseed, seed);
  if (noted) {
    for (i = 0; i < n_noted_tables; i++) {
      Table *t = noted_tables[i];
      luaH_resize(L, t, luaH_realasize(t), allocsizenode(t));
    }
    return;
  }
  gc_lists(g, lists);
  /* Every hash first, then the tables that use them. */
  for (i = 0; i < 4; i++)
    forget_long_hashes(g, lists[i]);
  for (i = 0; i < 4; i++)
    rebuild_long_keyed(L, lists[i]);
}
