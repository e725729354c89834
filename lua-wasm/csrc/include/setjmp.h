/* setjmp/longjmp for C code compiled into skywasm's snlua with
 * `-mllvm -wasm-enable-sjlj`: LLVM lowers these calls to wasm exception handling and
 * calls the runtime in ../setjmp.c. Neither Rust's bundled wasi-libc nor Debian's
 * wasi-libc ships this header. */
#ifndef SKYWASM_SETJMP_H
#define SKYWASM_SETJMP_H

/* At least the runtime's record (see setjmp.c): 16 bytes, 8-byte aligned. */
typedef unsigned long long jmp_buf[2];

int setjmp(jmp_buf env) __attribute__((returns_twice));
void longjmp(jmp_buf env, int val) __attribute__((noreturn));

/* Lua's POSIX configuration uses the underscore forms; there are no signal masks here. */
#define _setjmp setjmp
#define _longjmp longjmp

#endif
