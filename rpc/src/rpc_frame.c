/*
 * rpc_frame.c -- gRPC's 5-byte length-prefixed message framing.
 *
 * A message on a gRPC stream is: 1 byte compressed-flag (0 or 1), 4 bytes
 * big-endian length, then that many bytes.  HTTP/2 DATA frame boundaries
 * are unrelated to message boundaries, so the decoder is a small state
 * machine fed arbitrary chunks:
 *
 *     HEADER (hdr_have < 5) --5 bytes--> BODY (msg_have < msg_len)
 *        ^                                  |
 *        +------ message delivered ---------+
 *
 * The length is checked against the receive limit as soon as the prefix is
 * complete, before any byte is buffered, so a peer cannot make us allocate
 * more than the limit.  A message lying whole within one chunk is handed
 * to the callback straight from the chunk (no copy); one split across
 * chunks is assembled in a buffer of exactly its size.
 */
#include "rpc_internal.h"

#include <stdlib.h>
#include <string.h>

void rpc__frame_header(uint8_t out[RPC__FRAME_HDR], int compressed,
                       uint32_t len)
{
    out[0] = compressed ? 1 : 0;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
}

void rpc__frame_decoder_init(rpc__frame_decoder_t *d, uint32_t max_len)
{
    memset(d, 0, sizeof *d);
    d->max_len = max_len;
}

void rpc__frame_decoder_reset(rpc__frame_decoder_t *d)
{
    free(d->buf);
    d->buf = NULL;
    d->hdr_have = 0;
    d->msg_have = 0;
    d->msg_len = 0;
}

int rpc__frame_idle(const rpc__frame_decoder_t *d)
{
    return d->hdr_have == 0 && d->error == 0;
}

/* The prefix is complete: validate it and get ready for the body. */
static int start_body(rpc__frame_decoder_t *d)
{
    if (d->hdr[0] > 1)
        return RPC_ERR_MALFORMED;
    d->flag = d->hdr[0];
    d->msg_len = (uint32_t)d->hdr[1] << 24 | (uint32_t)d->hdr[2] << 16 |
                 (uint32_t)d->hdr[3] << 8 | (uint32_t)d->hdr[4];
    if (d->msg_len > d->max_len)
        return RPC_ERR_TOO_LARGE;
    d->msg_have = 0;
    return 0;
}

static int deliver(rpc__frame_decoder_t *d, const uint8_t *data, size_t len,
                   rpc__frame_cb cb, void *user_data)
{
    int rc = cb(d->flag, data, len, user_data);
    d->hdr_have = 0;
    d->msg_have = 0;
    d->msg_len = 0;
    return rc;
}

int rpc__frame_feed(rpc__frame_decoder_t *d, const uint8_t *data, size_t len,
                    rpc__frame_cb cb, void *user_data)
{
    if (d->error)
        return d->error;
    int rc = 0;
    while (len > 0 || (d->hdr_have == RPC__FRAME_HDR && d->msg_len == 0 &&
                       d->buf == NULL)) {
        if (d->hdr_have < RPC__FRAME_HDR) {
            size_t take = RPC__FRAME_HDR - d->hdr_have;
            if (take > len)
                take = len;
            memcpy(d->hdr + d->hdr_have, data, take);
            d->hdr_have += take;
            data += take;
            len -= take;
            if (d->hdr_have < RPC__FRAME_HDR)
                break;
            if ((rc = start_body(d)) != 0)
                goto fail;
            if (d->msg_len == 0) { /* empty message: deliver at once */
                if ((rc = deliver(d, data, 0, cb, user_data)) != 0)
                    goto fail;
                continue;
            }
        }
        /* In the body. */
        size_t want = d->msg_len - d->msg_have;
        if (d->buf == NULL && len >= want) { /* whole in this chunk */
            rc = deliver(d, data, want, cb, user_data);
            data += want;
            len -= want;
            if (rc != 0)
                goto fail;
            continue;
        }
        if (d->buf == NULL) {
            d->buf = rpc__malloc(d->msg_len);
            if (d->buf == NULL) {
                rc = RPC_ERR_NOMEM;
                goto fail;
            }
        }
        size_t take = want < len ? want : len;
        memcpy(d->buf + d->msg_have, data, take);
        d->msg_have += take;
        data += take;
        len -= take;
        if (d->msg_have == d->msg_len) {
            uint8_t *buf = d->buf;
            d->buf = NULL;
            rc = deliver(d, buf, d->msg_len, cb, user_data);
            free(buf);
            if (rc != 0)
                goto fail;
        }
    }
    return 0;
fail:
    d->error = rc;
    free(d->buf);
    d->buf = NULL;
    return rc;
}
