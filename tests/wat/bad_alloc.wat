;; A guest whose allocator returns a pointer outside its memory: the host must end this
;; service (not write anywhere) when a message arrives.
(module
  (memory (export "memory") 1)
  (func (export "skywasm_alloc") (param i32) (result i32) (i32.const 0x7ffffff0))
  (func (export "skywasm_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "skywasm_dispatch") (param i32 i32 i32 i32 i32)))
