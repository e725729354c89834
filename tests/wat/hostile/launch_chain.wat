;; Nested launches at full depth. The init argument (or a request's body) is `D L B`: burn
;; B centiseconds of CPU, recurse D frames, and at the bottom of the recursion LAUNCH
;; `hostile/launch_chain D L-1 B` (when L > 0), whose init does the same: each level of
;; launch nesting sits on top of D frames of wasm stack. Logs `nested launch ok` or
;; `nested launch failed` after a launch, `bottom reached` where L is 0, `running` as each
;; level begins. An empty argument
;; starts idle. A request is answered with the LAUNCH result (4 bytes; 0 at the bottom).
(module
  (import "skywasm" "command" (func $command (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "skywasm" "send" (func $send (param i32 i32 i32 i32 i32) (result i32)))
  (import "skywasm" "log" (func $log (param i32 i32)))
  (import "skywasm" "now" (func $now (result i64)))
  (memory (export "memory") 2)
  (data (i32.const 0) "LAUNCH")
  (data (i32.const 16) "hostile/launch_chain ")
  (data (i32.const 48) "nested launch ok")
  (data (i32.const 64) "nested launch failed")
  (data (i32.const 96) "bottom reached")
  (data (i32.const 112) "running")
  ;; parameters parsed from the text
  (global $depth (mut i32) (i32.const 0))
  (global $levels (mut i32) (i32.const 0))
  (global $burn (mut i32) (i32.const 0))
  (global $cursor (mut i32) (i32.const 0))
  (global $result (mut i32) (i32.const 0))
  ;; Reads a decimal number at $cursor (skipping spaces) up to $end.
  (func $number (param $end i32) (result i32)
    (local $n i32) (local $c i32)
    (block $done
      (loop $skip
        (br_if $done (i32.ge_u (global.get $cursor) (local.get $end)))
        (br_if $done (i32.ne (i32.load8_u (global.get $cursor)) (i32.const 32)))
        (global.set $cursor (i32.add (global.get $cursor) (i32.const 1)))
        (br $skip)))
    (block $done
      (loop $digit
        (br_if $done (i32.ge_u (global.get $cursor) (local.get $end)))
        (local.set $c (i32.sub (i32.load8_u (global.get $cursor)) (i32.const 48)))
        (br_if $done (i32.gt_u (local.get $c) (i32.const 9)))
        (local.set $n (i32.add (i32.mul (local.get $n) (i32.const 10)) (local.get $c)))
        (global.set $cursor (i32.add (global.get $cursor) (i32.const 1)))
        (br $digit)))
    (local.get $n))
  ;; Writes " n" in decimal at $at; returns the address after it.
  (func $put (param $at i32) (param $n i32) (result i32)
    (local $div i32)
    (i32.store8 (local.get $at) (i32.const 32))
    (local.set $at (i32.add (local.get $at) (i32.const 1)))
    (local.set $div (i32.const 1000000000))
    (loop $next
      (if (i32.or (i32.ge_u (local.get $n) (local.get $div)) (i32.eq (local.get $div) (i32.const 1)))
        (then
          (i32.store8 (local.get $at)
            (i32.add (i32.const 48) (i32.rem_u (i32.div_u (local.get $n) (local.get $div)) (i32.const 10))))
          (local.set $at (i32.add (local.get $at) (i32.const 1)))))
      (local.set $div (i32.div_u (local.get $div) (i32.const 10)))
      (br_if $next (i32.ne (local.get $div) (i32.const 0))))
    (local.get $at))
  (func $launch_next
    (local $end i32)
    ;; "hostile/launch_chain" is 20 bytes; the numbers follow at 256.
    (memory.copy (i32.const 256) (i32.const 16) (i32.const 20))
    (local.set $end (call $put (i32.const 276) (global.get $depth)))
    (local.set $end (call $put (local.get $end) (i32.sub (global.get $levels) (i32.const 1))))
    (local.set $end (call $put (local.get $end) (global.get $burn)))
    (global.set $result
      (call $command (i32.const 0) (i32.const 6) (i32.const 256)
                     (i32.sub (local.get $end) (i32.const 256)) (i32.const 512) (i32.const 64)))
    (if (i32.lt_s (global.get $result) (i32.const 0))
      (then (call $log (i32.const 64) (i32.const 20)))
      (else (call $log (i32.const 48) (i32.const 16)))))
  (func $down (param $left i32) (result i32)
    (local $a i64) (local $b i64) (local $c i64) (local $d i64)
    (local.set $a (i64.extend_i32_u (local.get $left)))
    (local.set $b (i64.mul (local.get $a) (i64.const 3)))
    (local.set $c (i64.add (local.get $b) (local.get $a)))
    (local.set $d (i64.xor (local.get $c) (local.get $b)))
    (if (i32.eqz (local.get $left))
      (then
        (if (i32.eqz (global.get $levels))
          (then (call $log (i32.const 96) (i32.const 14)))
          (else (call $launch_next)))
        (return (i32.const 0))))
    (i32.add
      (call $down (i32.sub (local.get $left) (i32.const 1)))
      (i32.wrap_i64 (i64.add (local.get $d) (i64.add (local.get $a) (local.get $c))))))
  (func $run (param $ptr i32) (param $len i32)
    (local $until i64)
    (call $log (i32.const 112) (i32.const 7))
    (global.set $cursor (local.get $ptr))
    (global.set $depth (call $number (i32.add (local.get $ptr) (local.get $len))))
    (global.set $levels (call $number (i32.add (local.get $ptr) (local.get $len))))
    (global.set $burn (call $number (i32.add (local.get $ptr) (local.get $len))))
    (global.set $result (i32.const 0))
    (local.set $until (i64.add (call $now) (i64.extend_i32_u (global.get $burn))))
    (loop $spin (br_if $spin (i64.lt_s (call $now) (local.get $until))))
    (drop (call $down (global.get $depth))))
  (func (export "skywasm_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "skywasm_init") (param $ptr i32) (param $len i32) (result i32)
    (if (i32.ne (local.get $len) (i32.const 0)) (then (call $run (local.get $ptr) (local.get $len))))
    (i32.const 0))
  (func (export "skywasm_dispatch")
    (param $type i32) (param $session i32) (param $source i32) (param $ptr i32) (param $len i32)
    (call $run (local.get $ptr) (local.get $len))
    (i32.store (i32.const 128) (global.get $result))
    (if (i32.ne (local.get $session) (i32.const 0))
      (then (drop (call $send (local.get $source) (i32.const 1) (local.get $session)
                              (i32.const 128) (i32.const 4)))))))
