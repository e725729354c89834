;; Pre-initialization that grows its memory until refused, then keeps asking for a while
;; (a memory bomb in `skywasm_preinit`). Requests are answered with the memory's size in
;; 64 KiB pages (4 bytes).
(module
  (import "skywasm" "send" (func $send (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "skywasm_preinit")
    (local $refused i32)
    (loop $more
      (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1))
        (then (local.set $refused (i32.add (local.get $refused) (i32.const 1)))))
      (br_if $more (i32.lt_u (local.get $refused) (i32.const 1000)))))
  (func (export "skywasm_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "skywasm_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "skywasm_dispatch")
    (param $type i32) (param $session i32) (param $source i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 128) (memory.size))
    (if (i32.ne (local.get $session) (i32.const 0))
      (then (drop (call $send (local.get $source) (i32.const 1) (local.get $session)
                              (i32.const 128) (i32.const 4)))))))
