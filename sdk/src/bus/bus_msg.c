/*
 * bus_msg.c - what both MQTT backends of fb_bus share about messages and
 * clients: the received message's one allocation (fb_msg_free frees it) and
 * the unguessable client id (fb_client_id).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "bus_internal.h"

struct msg_node *bus_msg__new(const char *topic, size_t tlen, const void *payload, size_t plen,
                              int retained)
{
    struct msg_node *node;

    /* One allocation: the node, then the payload, then the topic (see fb_msg_free). */
    node = malloc(sizeof *node + plen + 1 + tlen + 1);
    if (node == NULL)
        return NULL;
    node->next = NULL;
    node->msg.payload = (char *)(node + 1);
    node->msg.topic = node->msg.payload + plen + 1;
    memcpy(node->msg.topic, topic, tlen);
    node->msg.topic[tlen] = '\0';
    if (plen > 0)
        memcpy(node->msg.payload, payload, plen);
    node->msg.payload[plen] = '\0';
    node->msg.len = plen;
    node->msg.retained = retained;
    return node;
}

void fb_msg_free(fb_msg *msg)
{
    if (msg == NULL)
        return;
    /* msg is the first member of its queue node, which also holds the topic and payload. */
    free((struct msg_node *)(void *)msg);
}

/*
 * A client id is the broker's key for a session: a second connection with
 * the same id kicks the first off, and the first one's Last Will fires. So
 * the id ends with 64 random bits (getrandom), which nobody can guess from
 * the run, the task or the pid; the prefix only helps whoever reads the
 * broker's log. The suffix always fits: the prefix is cut first.
 */
enum fb_err fb_client_id(char *buf, size_t len, const char *prefix)
{
    unsigned char rnd[8];
    size_t keep;
    size_t i;

    if (buf == NULL || len < FB_CLIENT_ID_SUFFIX + 1)
        return FB_ERR_INVALID;
    if (prefix == NULL || *prefix == '\0')
        prefix = "fb";
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return FB_ERR_SYSTEM;
    keep = strlen(prefix);
    if (keep > len - 1 - FB_CLIENT_ID_SUFFIX)
        keep = len - 1 - FB_CLIENT_ID_SUFFIX;
    memcpy(buf, prefix, keep);
    buf[keep] = '-';
    for (i = 0; i < sizeof rnd; i++)
        snprintf(buf + keep + 1 + 2 * i, 3, "%02x", rnd[i]);
    explicit_bzero(rnd, sizeof rnd);
    return FB_OK;
}
