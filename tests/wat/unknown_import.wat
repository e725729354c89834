;; Imports a host function that does not exist: refused at launch with the import's name.
(module
  (import "skywasm" "format_disk" (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "skywasm_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "skywasm_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "skywasm_dispatch") (param i32 i32 i32 i32 i32)))
