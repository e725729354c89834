;; A signal chain: the init argument is the address of the next service (`:0000000a`, or
;; empty for the last). `skywasm_signal` recurses `depth` frames (the depth is the signal
;; number), then, at the bottom, sends `SIGNAL <next> <depth>`, and counts the signal.
;; Any request is answered with the count (4 bytes).
(module
  (import "skywasm" "command" (func $command (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "skywasm" "send" (func $send (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; "SIGNAL" at 0; the parameter "<next> <depth>" at 64; the count at 256; out at 512
  (data (i32.const 0) "SIGNAL")
  (global $param_len (mut i32) (i32.const 0))
  (global $count (mut i32) (i32.const 0))
  (func (export "skywasm_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "skywasm_init") (param $ptr i32) (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 32)) (then (return (i32.const 1))))
    (memory.copy (i32.const 64) (local.get $ptr) (local.get $len))
    (global.set $param_len (local.get $len))
    (i32.const 0))
  ;; Writes " <n>" (decimal) after the next address; returns the parameter's length.
  (func $param (param $n i32) (result i32)
    (local $at i32) (local $digits i32) (local $div i32)
    (local.set $at (i32.add (i32.const 64) (global.get $param_len)))
    (i32.store8 (local.get $at) (i32.const 32))
    (local.set $at (i32.add (local.get $at) (i32.const 1)))
    (local.set $div (i32.const 1000000))
    (loop $next
      (if (i32.or (i32.ge_u (local.get $n) (local.get $div)) (i32.eq (local.get $div) (i32.const 1)))
        (then
          (i32.store8 (local.get $at)
            (i32.add (i32.const 48) (i32.rem_u (i32.div_u (local.get $n) (local.get $div)) (i32.const 10))))
          (local.set $at (i32.add (local.get $at) (i32.const 1)))))
      (local.set $div (i32.div_u (local.get $div) (i32.const 10)))
      (br_if $next (i32.ne (local.get $div) (i32.const 0))))
    (i32.sub (local.get $at) (i32.const 64)))
  (func $down (param $left i32) (param $depth i32) (result i32)
    (local $a i64) (local $b i64) (local $c i64) (local $d i64)
    (local.set $a (i64.extend_i32_u (local.get $left)))
    (local.set $b (i64.mul (local.get $a) (i64.const 3)))
    (local.set $c (i64.add (local.get $b) (local.get $a)))
    (local.set $d (i64.xor (local.get $c) (local.get $b)))
    (if (i32.eqz (local.get $left))
      (then
        (if (i32.ne (global.get $param_len) (i32.const 0))
          (then
            (drop (call $command (i32.const 0) (i32.const 6) (i32.const 64)
                                 (call $param (local.get $depth)) (i32.const 512) (i32.const 64)))))
        (return (i32.const 0))))
    (i32.add
      (call $down (i32.sub (local.get $left) (i32.const 1)) (local.get $depth))
      (i32.wrap_i64 (i64.add (local.get $d) (i64.add (local.get $a) (local.get $c))))))
  (func (export "skywasm_signal") (param $sig i32)
    (drop (call $down (local.get $sig) (local.get $sig)))
    (global.set $count (i32.add (global.get $count) (i32.const 1))))
  (func (export "skywasm_dispatch")
    (param $type i32) (param $session i32) (param $source i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 256) (global.get $count))
    (if (i32.ne (local.get $session) (i32.const 0))
      (then (drop (call $send (local.get $source) (i32.const 1) (local.get $session)
                              (i32.const 256) (i32.const 4)))))))
