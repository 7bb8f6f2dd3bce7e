/*
 * paho_load.c - loads Eclipse Paho MQTTAsync with dlopen, once per variant.
 *
 * Paho is not linked but loaded by the first bus of each kind:
 * libpaho-mqtt3a for tcp:// and mqtt://, the SSL variant libpaho-mqtt3as only
 * for mqtts:// and ssl://. The SSL variant maps libssl and libcrypto into the
 * process (3.7 MB RSS, ~1.5 ms of loading at every start) although tasks on
 * the private broker never use TLS; measured in docs/performance.md. Each
 * variant is loaded RTLD_LOCAL, so the two can coexist in one process with
 * their own threads; a program that links Paho itself (bench/rtt.c) has it in
 * the global scope, and then that copy is used for every bus, so that no
 * second copy runs beside it.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "paho_load.h"

enum { PAHO_PLAIN, PAHO_TLS };
static const char *const paho_sonames[2] = {"libpaho-mqtt3a.so.1", "libpaho-mqtt3as.so.1"};
static struct paho paho_api[2];
static int paho_ready[2];
static char paho_error[2][256];
static pthread_once_t paho_once[2] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};

static void paho_load(int which)
{
    void *lib;
    const char *why;
    struct paho *api = &paho_api[which];

    /* Paho already in the global scope (the program links it): use that copy. */
    if (dlsym(RTLD_DEFAULT, "MQTTAsync_createWithOptions") != NULL)
        lib = dlopen(NULL, RTLD_NOW);
    else
        lib = dlopen(paho_sonames[which], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        why = dlerror();
        snprintf(paho_error[which], sizeof paho_error[which], "cannot load %s: %s",
                 paho_sonames[which], why != NULL ? why : "unknown error");
        return;
    }
    /* POSIX leaves object-to-function pointer conversion to dlsym's users; glibc makes it work. */
#define RESOLVE(field, symbol)                                                                     \
    do {                                                                                           \
        void *sym = dlsym(lib, symbol);                                                            \
        if (sym == NULL) {                                                                         \
            snprintf(paho_error[which], sizeof paho_error[which], "%s lacks %s",                   \
                     paho_sonames[which], symbol);                                                 \
            return;                                                                                \
        }                                                                                          \
        memcpy(&api->field, &sym, sizeof sym);                                                     \
    } while (0)
    RESOLVE(create, "MQTTAsync_createWithOptions");
    RESOLVE(set_callbacks, "MQTTAsync_setCallbacks");
    RESOLVE(set_disconnected, "MQTTAsync_setDisconnected");
    RESOLVE(connect, "MQTTAsync_connect");
    RESOLVE(disconnect, "MQTTAsync_disconnect");
    RESOLVE(destroy, "MQTTAsync_destroy");
    RESOLVE(send, "MQTTAsync_sendMessage");
    RESOLVE(subscribe_many, "MQTTAsync_subscribeMany");
    RESOLVE(free_message, "MQTTAsync_freeMessage");
    RESOLVE(free, "MQTTAsync_free");
    RESOLVE(props_has, "MQTTProperties_hasProperty");
    RESOLVE(props_number, "MQTTProperties_getNumericValue");
    RESOLVE(props_add, "MQTTProperties_add");
    RESOLVE(props_free, "MQTTProperties_free");
    RESOLVE(reason_text, "MQTTReasonCode_toString");
#undef RESOLVE
    paho_ready[which] = 1;
}

static void paho_load_plain(void)
{
    paho_load(PAHO_PLAIN);
}

static void paho_load_tls(void)
{
    paho_load(PAHO_TLS);
}

/* The Paho variant for a bus (loaded on first use), or NULL with the reason in errbuf. */
const struct paho *paho_load__get(int tls, char *errbuf, size_t errlen)
{
    int which = tls ? PAHO_TLS : PAHO_PLAIN;

    pthread_once(&paho_once[which], tls ? paho_load_tls : paho_load_plain);
    if (!paho_ready[which]) {
        err__set(errbuf, errlen, "MQTT library unavailable: %s", paho_error[which]);
        return NULL;
    }
    return &paho_api[which];
}
