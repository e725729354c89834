/*
** skywasm: a new string-hash seed for a Lua state built with a fixed one.
**
** The state every snlua service starts from is built once and snapshotted, so its seed
** (luai_makeseed, fixed in build.rs) is the same in every service: whoever knows it can
** make table keys that all collide. After the snapshot is instantiated, each service calls
** skywasm_lua_reseed with random bits: every short string's hash is recomputed and the
** string table rebuilt, long strings forget their hash, and every table is rebuilt so its
** keys sit where the new hashes put them.
*/

#include "lua.h"
#include "lgc.h"
#include "lobject.h"
#include "lstate.h"
#include "lstring.h"
#include "ltable.h"

/* The string table, every short string rehashed with the state's (new) seed. */
static void rehash_strings (global_State *g) {
  stringtable *tb = &g->strt;
  TString *all = NULL;
  int i;
  for (i = 0; i < tb->size; i++) {
    TString *ts = tb->hash[i];
    while (ts != NULL) {
      TString *next = ts->u.hnext;
      ts->hash = luaS_hash(getshrstr(ts), ts->shrlen, g->seed);
      ts->u.hnext = all;
      all = ts;
      ts = next;
    }
    tb->hash[i] = NULL;
  }
  while (all != NULL) {
    TString *next = all->u.hnext;
    int h = lmod(all->hash, tb->size);
    all->u.hnext = tb->hash[h];
    tb->hash[h] = all;
    all = next;
  }
}

/* Long strings of one GC list forget their hash (it is computed again when needed). */
static void forget_long_hashes (global_State *g, GCObject *o) {
  for (; o != NULL; o = o->next) {
    if (o->tt == LUA_VLNGSTR) {
      TString *ts = gco2ts(o);
      ts->hash = g->seed;  /* the seed a long string's hash starts from */
      ts->extra = 0;
    }
  }
}

/* Tables of one GC list are rebuilt: their keys move to where the new hashes put them. */
static void rebuild_tables (lua_State *L, GCObject *o) {
  for (; o != NULL; o = o->next) {
    if (o->tt == LUA_VTABLE) {
      Table *t = gco2t(o);
      luaH_resize(L, t, luaH_realasize(t), allocsizenode(t));
    }
  }
}

void skywasm_lua_reseed (lua_State *L, unsigned int seed) {
  global_State *g = G(L);
  GCObject *lists[4];
  int i;
  lists[0] = g->allgc;
  lists[1] = g->finobj;
  lists[2] = g->tobefnz;
  lists[3] = g->fixedgc;
  g->seed = seed;
  rehash_strings(g);
  /* Every hash first, then the tables that use them. */
  for (i = 0; i < 4; i++)
    forget_long_hashes(g, lists[i]);
  for (i = 0; i < 4; i++)
    rebuild_tables(L, lists[i]);
}
