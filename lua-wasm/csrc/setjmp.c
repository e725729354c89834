/* The runtime that LLVM's wasm setjmp/longjmp lowering (`-mllvm -wasm-enable-sjlj`) calls:
 * the same three functions and exception tag as wasi-libc's libsetjmp, written here
 * because neither Rust's bundled wasi-libc nor Debian's has them.
 *
 * A `setjmp` site records which invocation of which function owns the buffer and a label
 * for the site; `longjmp` throws the buffer on the `__c_longjmp` tag; every function that
 * contains a `setjmp` catches that tag and asks `__wasm_setjmp_test` whether the buffer
 * belongs to one of its own active sites (then it jumps to that label) or rethrows. */
#include <stdint.h>

struct jump_record {
  void *invocation;  /* identifies the function invocation that called setjmp */
  uint32_t label;    /* the setjmp site within that invocation; never 0 */
  struct {
    void *env;       /* the jmp_buf being jumped to */
    int val;         /* setjmp's return value after the jump; never 0 */
  } arg;
};

_Static_assert(sizeof(struct jump_record) <= 16, "jmp_buf in setjmp.h is 16 bytes");

void __wasm_setjmp(void *env, uint32_t label, void *invocation) {
  struct jump_record *record = env;
  if (label == 0 || invocation == 0) __builtin_trap();
  record->invocation = invocation;
  record->label = label;
}

uint32_t __wasm_setjmp_test(void *env, void *invocation) {
  struct jump_record *record = env;
  if (record->label == 0 || invocation == 0) __builtin_trap();
  return record->invocation == invocation ? record->label : 0;
}

void __wasm_longjmp(void *env, int val) {
  struct jump_record *record = env;
  record->arg.env = env;
  record->arg.val = val == 0 ? 1 : val;
  __builtin_wasm_throw(1, &record->arg); /* tag 1 is __c_longjmp */
}
