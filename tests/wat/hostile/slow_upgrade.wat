;; Spends 600 ms of CPU (by the monotonic clock) in each step of an upgrade: its snapshot
;; hands over nothing after spinning, and its init spins when it has arguments. An upgrade
;; from it to itself with arguments takes 1.2 s of guest time in one swap.
(module
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (func $now (result i64)
    (drop (call $clock (i32.const 1) (i64.const 0) (i32.const 0)))
    (i64.load (i32.const 0)))
  (func $spin (local $until i64)
    (local.set $until (i64.add (call $now) (i64.const 600000000)))
    (loop $l (br_if $l (i64.lt_u (call $now) (local.get $until)))))
  (func (export "skywasm_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "skywasm_init") (param $ptr i32) (param $len i32) (result i32)
    (if (local.get $len) (then (call $spin)))
    (i32.const 0))
  (func (export "skywasm_snapshot") (result i32)
    (call $spin)
    (i32.const 0))
  (func (export "skywasm_dispatch") (param i32 i32 i32 i32 i32)))
