;; LAUNCHes what a request's body says (`module args`), from inside the request, and answers
;; LAUNCH's return value (4 bytes): a launch nested in a message.
(module
  (import "skywasm" "command" (func $command (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "skywasm" "send" (func $send (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "LAUNCH")
  (func (export "skywasm_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "skywasm_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "skywasm_dispatch")
    (param $type i32) (param $session i32) (param $source i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 128)
      (call $command (i32.const 0) (i32.const 6) (local.get $ptr) (local.get $len)
                     (i32.const 512) (i32.const 64)))
    (if (i32.ne (local.get $session) (i32.const 0))
      (then (drop (call $send (local.get $source) (i32.const 1) (local.get $session)
                              (i32.const 128) (i32.const 4)))))))
