/*
 * skywasm.h - the skywasm host ABI for C, C++ and Zig guests.
 *
 * A service is a wasm module that imports the functions below from module "skywasm" and
 * exports:
 *
 *   memory                                  its linear memory
 *   int32_t  skywasm_init(const char *args, uint32_t len)     0 = started
 *   void     skywasm_dispatch(uint32_t type, int32_t session, uint32_t source,
 *                             uint8_t *msg, uint32_t len)     one message
 *   uint8_t *skywasm_alloc(uint32_t len)    memory the host fills with an incoming message
 *                                           (or the init arguments); the next
 *                                           skywasm_dispatch/skywasm_init owns it
 *   void     _initialize(void)              optional, called once first (WASI reactors)
 *   void     skywasm_signal(int32_t sig)    optional, the SIGNAL command
 *
 * docs/abi.md is the full specification. The values here are checked against the Rust
 * definitions (crate skywasm-abi) by the host's tests.
 */
#ifndef SKYWASM_H
#define SKYWASM_H

#include <stdint.h>

/* Message types, numbered as skynet's PTYPE_*. */
#define SKYWASM_PTYPE_TEXT 0
#define SKYWASM_PTYPE_RESPONSE 1
#define SKYWASM_PTYPE_MULTICAST 2
#define SKYWASM_PTYPE_CLIENT 3
#define SKYWASM_PTYPE_SYSTEM 4
#define SKYWASM_PTYPE_HARBOR 5
#define SKYWASM_PTYPE_SOCKET 6
#define SKYWASM_PTYPE_ERROR 7
#define SKYWASM_PTYPE_QUEUE 8
#define SKYWASM_PTYPE_DEBUG 9
#define SKYWASM_PTYPE_LUA 10
#define SKYWASM_PTYPE_SNAX 11
#define SKYWASM_PTYPE_TRACE 12

/* Error codes (negative return values). */
#define SKYWASM_E_INVALID_ADDRESS (-1)
#define SKYWASM_E_UNKNOWN_NAME (-2)
#define SKYWASM_E_DENIED (-3)
#define SKYWASM_E_TOO_LARGE (-4)
#define SKYWASM_E_MAILBOX_FULL (-5)
#define SKYWASM_E_UNKNOWN_COMMAND (-6)
#define SKYWASM_E_INVALID_ARGUMENT (-7)
#define SKYWASM_E_NOT_FOUND (-8)
#define SKYWASM_E_FAILED (-9)
#define SKYWASM_E_NAME_TAKEN (-10)
#define SKYWASM_E_LIMIT (-11)
#define SKYWASM_E_SOCKET (-12)

#define SKYWASM_IMPORT(name) __attribute__((import_module("skywasm"), import_name(#name)))

/* Queue a message; session 0 = one-way, or the session of a request being answered. */
SKYWASM_IMPORT(send)
int32_t skywasm_send(uint32_t dest, uint32_t type, int32_t session, const void *msg, uint32_t len);
/* The same, to a name (".local", global, or ":0000000a"). */
SKYWASM_IMPORT(send_name)
int32_t skywasm_send_name(const char *name, uint32_t name_len, uint32_t type, int32_t session,
                          const void *msg, uint32_t len);
/* Send a request with a fresh session; returns the session (> 0) or an error code. */
SKYWASM_IMPORT(call)
int32_t skywasm_call(uint32_t dest, uint32_t type, const void *msg, uint32_t len);
SKYWASM_IMPORT(call_name)
int32_t skywasm_call_name(const char *name, uint32_t name_len, uint32_t type, const void *msg,
                          uint32_t len);
/* Send with another source (privileged). */
SKYWASM_IMPORT(redirect)
int32_t skywasm_redirect(uint32_t dest, uint32_t source, uint32_t type, int32_t session,
                         const void *msg, uint32_t len);
/* One body to many services as PTYPE_MULTICAST (privileged): how many took it. */
SKYWASM_IMPORT(multicast)
int32_t skywasm_multicast(uint32_t source, int32_t session, const void *msg, uint32_t len,
                          const uint32_t *dests, uint32_t dests_count);
/* skynet.stm's objects held by the host (op: SKYWASM_STM_*; trusted services only). */
#define SKYWASM_STM_NEW 0
#define SKYWASM_STM_UPDATE 1
#define SKYWASM_STM_COPY 2
#define SKYWASM_STM_RELEASE_WRITER 3
#define SKYWASM_STM_RELEASE_READER 4
#define SKYWASM_STM_READ 5
#define SKYWASM_STM_ADOPT 6
SKYWASM_IMPORT(stm)
int64_t skywasm_stm(uint32_t op, uint32_t id, int64_t seen, void *buf, uint32_t len);
/* skynet.sharetable's tables held by the host (op: SKYWASM_SHARE_*; trusted services only). */
#define SKYWASM_SHARE_CREATE 0
#define SKYWASM_SHARE_COPY 1
#define SKYWASM_SHARE_ADOPT 2
#define SKYWASM_SHARE_RELEASE 3
#define SKYWASM_SHARE_GET 4
#define SKYWASM_SHARE_NEXT 5
#define SKYWASM_SHARE_LEN 6
SKYWASM_IMPORT(share)
int64_t skywasm_share(uint32_t op, uint32_t id, uint32_t node, const void *in, uint32_t in_len,
                      void *out, uint32_t out_cap);
/* Arm a timer: a PTYPE_RESPONSE with the returned session arrives after `centiseconds`. */
SKYWASM_IMPORT(timeout)
int32_t skywasm_timeout(int32_t centiseconds);
SKYWASM_IMPORT(genid)
int32_t skywasm_genid(void);
SKYWASM_IMPORT(self_handle)
uint32_t skywasm_self_handle(void);
/* Centiseconds since the node started; a monotonic nanosecond counter. */
SKYWASM_IMPORT(now)
int64_t skywasm_now(void);
SKYWASM_IMPORT(hpc)
int64_t skywasm_hpc(void);
/* A skynet text command (LAUNCH, REG, QUERY, GETENV, ...): writes up to out_cap bytes of the
 * result and returns its full length, or an error code. */
SKYWASM_IMPORT(command)
int32_t skywasm_command(const char *cmd, uint32_t cmd_len, const char *param, uint32_t param_len,
                        char *out, uint32_t out_cap);
/* One line to the node's log. */
SKYWASM_IMPORT(log)
void skywasm_log(const char *text, uint32_t len);
/* A script or module source along the node's search path (kind: SKYWASM_SOURCE_*): writes up
 * to out_cap bytes of "pattern\0path\0bytes" and returns the full length, or SKYWASM_E_NOT_FOUND. */
#define SKYWASM_SOURCE_SERVICE 0
#define SKYWASM_SOURCE_MODULE 1
#define SKYWASM_SOURCE_PRELOAD 2
#define SKYWASM_SOURCE_FILE 3
#define SKYWASM_SOURCE_SNAX 4
#define SKYWASM_SOURCE_DATA 5
SKYWASM_IMPORT(load_source)
int32_t skywasm_load_source(uint32_t kind, const char *name, uint32_t name_len, char *out,
                            uint32_t out_cap);

/* Sockets (docs/abi.md §4.14-4.22). Events arrive as SKYWASM_PTYPE_SOCKET messages whose body
 * is type, id, ud (uint32/int32, little-endian) then the payload. */
#define SKYWASM_SOCKET_DATA 1
#define SKYWASM_SOCKET_CONNECT 2
#define SKYWASM_SOCKET_CLOSE 3
#define SKYWASM_SOCKET_ACCEPT 4
#define SKYWASM_SOCKET_ERROR 5
#define SKYWASM_SOCKET_UDP 6
#define SKYWASM_SOCKET_WARNING 7
#define SKYWASM_SOCKET_RESOLVE 8
#define SKYWASM_SOCKET_RESOLVE_IPV6 1
#define SKYWASM_SOCKET_TLS 9
#define SKYWASM_SOCKET_TLS_CLIENT 0
#define SKYWASM_SOCKET_TLS_SERVER 1
#define SKYWASM_SOCKET_START 0
#define SKYWASM_SOCKET_PAUSE 1
#define SKYWASM_SOCKET_CLOSE_SOCKET 2
#define SKYWASM_SOCKET_SHUTDOWN 3
#define SKYWASM_SOCKET_NODELAY 4
#define SKYWASM_SOCKET_PRIORITY_HIGH 0
#define SKYWASM_SOCKET_PRIORITY_LOW 1
#define SKYWASM_SOCKET_QUERY_ERROR 0
#define SKYWASM_SOCKET_QUERY_ADDRESS 1
#define SKYWASM_SOCKET_QUERY_INFO 2
/* A listening TCP socket: its id, or an error code (SKYWASM_E_SOCKET: see QUERY_ERROR). */
SKYWASM_IMPORT(socket_listen)
int32_t skywasm_socket_listen(const char *host, uint32_t host_len, uint32_t port, int32_t backlog);
/* A TCP connection being made: its id; a CONNECT or ERROR event follows. */
SKYWASM_IMPORT(socket_connect)
int32_t skywasm_socket_connect(const char *host, uint32_t host_len, uint32_t port);
/* START (become the owner, read), PAUSE, CLOSE_SOCKET, SHUTDOWN or NODELAY. */
SKYWASM_IMPORT(socket_control)
int32_t skywasm_socket_control(uint32_t op, int32_t id);
/* Queue bytes on a socket (PRIORITY_HIGH or PRIORITY_LOW). */
SKYWASM_IMPORT(socket_send)
int32_t skywasm_socket_send(int32_t id, uint32_t priority, const void *data, uint32_t len);
/* The last socket error's text, a socket's local address, or netstat (skynet.pack bytes). */
SKYWASM_IMPORT(socket_query)
int32_t skywasm_socket_query(uint32_t what, int32_t id, char *out, uint32_t out_cap);
/* A bound UDP socket: its id. UDP events carry the data, then the sender's "ip:port". */
SKYWASM_IMPORT(socket_udp)
int32_t skywasm_socket_udp(const char *host, uint32_t host_len, uint32_t port);
/* A UDP socket's default peer (for socket_send). */
SKYWASM_IMPORT(socket_udp_connect)
int32_t skywasm_socket_udp_connect(int32_t id, const char *host, uint32_t host_len, uint32_t port);
/* One datagram to "ip:port". */
SKYWASM_IMPORT(socket_sendto)
int32_t skywasm_socket_sendto(int32_t id, const char *addr, uint32_t addr_len, const void *data,
                              uint32_t len);
/* Starts a host-name lookup (flags: SKYWASM_SOCKET_RESOLVE_IPV6): its id; a RESOLVE event
 * answers with the addresses (ud 0) or why not (ud 1). */
SKYWASM_IMPORT(socket_resolve)
int32_t skywasm_socket_resolve(const char *name, uint32_t name_len, uint32_t flags);
/* Makes a TCP socket speak TLS: a client of `name` (SKYWASM_SOCKET_TLS_CLIENT) or a server
 * with the node's certificate (SKYWASM_SOCKET_TLS_SERVER); a TLS event says when it may. */
SKYWASM_IMPORT(socket_tls)
int32_t skywasm_socket_tls(int32_t id, uint32_t mode, const char *name, uint32_t name_len);

/* Hot upgrade (docs/abi.md §4.23, §6): inside the optional export
 * int32_t skywasm_snapshot(void), hands the host the state (of the guest's own version) that
 * the new code receives in the optional export
 * int32_t skywasm_restore(uint32_t version, void *state, uint32_t len), before skywasm_init. */
SKYWASM_IMPORT(upgrade_state)
int32_t skywasm_upgrade_state(uint32_t version, const void *state, uint32_t len);

#endif
