;; Asks WASI to sleep: `poll_oneoff` with one monotonic-clock subscription.
;; A request's body is the timeout, 8 bytes little-endian nanoseconds; the answer is 8
;; bytes: poll_oneoff's errno and the number of events it reported (both i32).
;; Init argument `forever`: the same call with a timeout of 2^63-1 ns, in the init. Logs
;; `about to wait` before each call.
(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "skywasm" "send" (func $send (param i32 i32 i32 i32 i32) (result i32)))
  (import "skywasm" "log" (func $log (param i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 160) "about to wait")
  ;; subscription at 0 (48 bytes), event at 64 (32 bytes), event count at 96, answer at 128
  (func $sleep (param $ns i64) (result i32)
    (call $log (i32.const 160) (i32.const 13))
    (i32.store (i32.const 96) (i32.const 0))
    (i64.store (i32.const 0) (i64.const 7))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (local.get $ns))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 96)))
  (func (export "skywasm_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "skywasm_init") (param $ptr i32) (param $len i32) (result i32)
    (if (i32.ne (local.get $len) (i32.const 0))
      (then (drop (call $sleep (i64.const 0x7fffffffffffffff)))))
    (i32.const 0))
  (func (export "skywasm_dispatch")
    (param $type i32) (param $session i32) (param $source i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 128) (call $sleep (i64.load (local.get $ptr))))
    (i32.store (i32.const 132) (i32.load (i32.const 96)))
    (if (i32.ne (local.get $session) (i32.const 0))
      (then (drop (call $send (local.get $source) (i32.const 1) (local.get $session)
                              (i32.const 128) (i32.const 8)))))))
