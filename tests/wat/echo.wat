;; A complete service in WAT: answers every request with its own body (no allocator state:
;; every message lands at offset 1024, which is fine because dispatch finishes with it).
(module
  (import "skywasm" "send" (func $send (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "skywasm_alloc") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 64512)) (then (return (i32.const 0))))
    (i32.const 1024))
  (func (export "skywasm_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "skywasm_dispatch")
    (param $type i32) (param $session i32) (param $source i32) (param $ptr i32) (param $len i32)
    (if (i32.ne (local.get $session) (i32.const 0))
      (then
        (drop (call $send (local.get $source) (i32.const 1) (local.get $session)
                          (local.get $ptr) (local.get $len)))))))
