/*
 * echo_c: a skywasm service written in C against guest-sdk/include/skywasm.h, with no libc.
 *
 * It registers ".echo_c" and answers every PTYPE_TEXT request with "C heard: <text>",
 * upper-cased. It shows that any language that can import and export wasm functions can be
 * a skywasm service.
 */
#include <skywasm.h>

#define HEAP_PAGES 4
static unsigned char heap[HEAP_PAGES * 65536];
static uint32_t heap_top;

/* Bump allocator reset after each message: the service keeps no message past dispatch. */
uint8_t *skywasm_alloc(uint32_t len) {
    uint32_t start = (heap_top + 7u) & ~7u;
    if (len > sizeof(heap) - start) {
        return 0; /* the host ends the service: it cannot take this message */
    }
    heap_top = start + len;
    return heap + start;
}

static uint32_t length(const char *s) {
    uint32_t n = 0;
    while (s[n]) {
        n++;
    }
    return n;
}

static void log_text(const char *s) { skywasm_log(s, length(s)); }

int32_t skywasm_init(const char *args, uint32_t len) {
    (void)args;
    (void)len;
    static const char name[] = ".echo_c";
    char result[32];
    int32_t rc = skywasm_command("REG", 3, name, sizeof(name) - 1, result, sizeof(result));
    heap_top = 0;
    if (rc < 0) {
        log_text("echo_c: cannot register .echo_c");
        return 1;
    }
    log_text("echo_c: a C service is ready");
    return 0;
}

void skywasm_dispatch(uint32_t type, int32_t session, uint32_t source, uint8_t *msg, uint32_t len) {
    static const char prefix[] = "C HEARD: ";
    if (type == SKYWASM_PTYPE_TEXT && session != 0) {
        uint32_t plen = sizeof(prefix) - 1;
        uint8_t *reply = skywasm_alloc(plen + len);
        if (reply) {
            for (uint32_t i = 0; i < plen; i++) {
                reply[i] = (uint8_t)prefix[i];
            }
            for (uint32_t i = 0; i < len; i++) {
                uint8_t c = msg[i];
                reply[plen + i] = (c >= 'a' && c <= 'z') ? (uint8_t)(c - 'a' + 'A') : c;
            }
            skywasm_send(source, SKYWASM_PTYPE_RESPONSE, session, reply, plen + len);
        } else {
            skywasm_send(source, SKYWASM_PTYPE_ERROR, session, 0, 0);
        }
    } else if (session != 0 && type != SKYWASM_PTYPE_RESPONSE && type != SKYWASM_PTYPE_ERROR) {
        /* Not a request this service understands: fail it rather than leave it hanging. */
        skywasm_send(source, SKYWASM_PTYPE_ERROR, session, 0, 0);
    }
    heap_top = 0;
}
