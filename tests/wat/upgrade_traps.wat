;; Upgrade test: an echo service (as echo.wat) with the upgrade exports, both of which trap
;; when the init argument says so: `snapshot` makes skywasm_snapshot trap (the running code
;; faults: the service ends), `restore` makes skywasm_restore trap (the new code does not
;; start: the old code carries on). The argument is kept at offset 512.
(module
  (import "skywasm" "send" (func $send (param i32 i32 i32 i32 i32) (result i32)))
  (import "skywasm" "upgrade_state" (func $upgrade_state (param i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 256) "state")
  (global $mode (mut i32) (i32.const 0)) ;; 0: none, 1: snapshot traps, 2: restore traps
  (func (export "skywasm_alloc") (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 64512)) (then (return (i32.const 0))))
    (i32.const 1024))
  (func (export "skywasm_init") (param $ptr i32) (param $len i32) (result i32)
    ;; "s..." = snapshot, "r..." = restore
    (if (i32.gt_u (local.get $len) (i32.const 0))
      (then
        (if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 115))
          (then (global.set $mode (i32.const 1))))
        (if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 114))
          (then (global.set $mode (i32.const 2))))))
    (i32.const 0))
  (func (export "skywasm_snapshot") (result i32)
    (if (i32.eq (global.get $mode) (i32.const 1)) (then unreachable))
    (drop (call $upgrade_state (i32.const 7) (i32.const 256) (i32.const 5)))
    (i32.const 0))
  (func (export "skywasm_restore") (param $version i32) (param $ptr i32) (param $len i32) (result i32)
    unreachable)
  (func (export "skywasm_dispatch")
    (param $type i32) (param $session i32) (param $source i32) (param $ptr i32) (param $len i32)
    (if (i32.ne (local.get $session) (i32.const 0))
      (then
        (drop (call $send (local.get $source) (i32.const 1) (local.get $session)
                          (local.get $ptr) (local.get $len)))))))
