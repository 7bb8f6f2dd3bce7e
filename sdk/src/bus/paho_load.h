/*
 * paho_load.h - the Paho functions the bus calls, resolved with dlopen
 * (paho_load.c). Only the files that call Paho include this: paho_load.c and
 * bus_paho.c.
 */
#ifndef FLOWBUS_PAHO_LOAD_H
#define FLOWBUS_PAHO_LOAD_H

#include <stddef.h>

#include <MQTTAsync.h>

/*
 * The Paho functions the bus calls, resolved once per variant by paho_load.c.
 * __typeof__ keeps the exact prototypes of MQTTAsync.h.
 */
struct paho {
    __typeof__(&MQTTAsync_createWithOptions) create;
    __typeof__(&MQTTAsync_setCallbacks) set_callbacks;
    __typeof__(&MQTTAsync_setDisconnected) set_disconnected;
    __typeof__(&MQTTAsync_connect) connect;
    __typeof__(&MQTTAsync_disconnect) disconnect;
    __typeof__(&MQTTAsync_destroy) destroy;
    __typeof__(&MQTTAsync_sendMessage) send;
    __typeof__(&MQTTAsync_subscribeMany) subscribe_many;
    __typeof__(&MQTTAsync_freeMessage) free_message;
    __typeof__(&MQTTAsync_free) free;
    __typeof__(&MQTTProperties_hasProperty) props_has;
    __typeof__(&MQTTProperties_getNumericValue) props_number;
    __typeof__(&MQTTProperties_add) props_add;
    __typeof__(&MQTTProperties_free) props_free;
    __typeof__(&MQTTReasonCode_toString) reason_text;
};

/*
 * The Paho variant for a bus (the SSL one if tls), loaded on first use and
 * then shared by every bus of the process; or NULL with the reason in errbuf.
 * Thread-safe.
 */
const struct paho *paho_load__get(int tls, char *errbuf, size_t errlen);

#endif
