/*
 * image.h — request image bytes -> the model's normalised input tensor [C, S, S]. Pure functions over the caller's
 * buffers: no I/O, no globals, no threads, no prints. Errors are negative ACM_IMAGE_E* codes with a message in the
 * caller's buffer.
 *
 * Accepted formats (sniffed from the first bytes; the request's media type is checked separately, see
 * acm_image_format_from_type):
 *   PNG   via libspng: every colour type and bit depth (palette, tRNS, 16-bit); alpha is dropped (not composited).
 *   JPEG  via libturbojpeg: baseline and progressive, grey or YCbCr. When the model's input is smaller than the image
 *         the decoder's DCT scaling (1/8 .. 1) picks the smallest scaled size that is still >= the target in both
 *         dimensions, so a large photo costs a fraction of a full decode.
 *   PNM   P2/P5 (PGM, grey) and P3/P6 (PPM, RGB), ASCII or binary, any maxval 1..65535 (two bytes big-endian per
 *         sample in binary files when maxval > 255), '#' comments in the header.
 *
 * The pixel limit is checked against the header's width x height before any pixel is decoded (ACM_IMAGE_ETOOBIG).
 *
 * Conversion, in this order (values stay in [0, 255] as float until the last step):
 *   1. channels: grey -> RGB by copying; RGB -> grey by ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B (a pixel with
 *      R = G = B keeps its value exactly); alpha dropped.
 *   2. size: non-square images are stretched to S x S (the models are trained on whole, square images). Resampling is
 *      separable with a triangle filter whose support widens with the reduction factor (antialiased bilinear, as
 *      Pillow's Image.resize(BILINEAR)); an image already S x S is copied unchanged.
 *   3. normalisation: x = (v / 255 - mean[c]) / std[c], in float, the same expression as acm-train eval, so a PNG of
 *      a Fashion-MNIST image gives bit-identical input.
 */
#ifndef ACM_PROTO_IMAGE_H
#define ACM_PROTO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

enum {
    ACM_IMAGE_EFORMAT = -1, /* not PNG, JPEG or PNM; or an unsupported variant */
    ACM_IMAGE_EDECODE = -2, /* malformed or truncated image data */
    ACM_IMAGE_ETOOBIG = -3, /* width x height over the pixel limit (from the header) */
    ACM_IMAGE_ENOMEM = -4,
    ACM_IMAGE_EINVAL = -5, /* bad parameters (target size, channels) */
};

typedef enum { ACM_IMAGE_UNKNOWN = 0, ACM_IMAGE_PNG, ACM_IMAGE_JPEG, ACM_IMAGE_PNM } acm_image_format;

typedef struct {
    acm_image_format format;
    int width, height;
    int channels; /* in the file: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA (palette PNGs report 3 or 4) */
} acm_image_info;

typedef struct {
    int size;            /* S: target width and height */
    int channels;        /* C: 1 or 3 */
    float mean[3], std[3];
    int64_t max_pixels;  /* width x height limit; <= 0: no limit */
} acm_image_params;

const char *acm_image_format_name(acm_image_format f);
/* Format from the magic bytes; ACM_IMAGE_UNKNOWN if none matches. */
acm_image_format acm_image_sniff(const uint8_t *buf, size_t len);
/* Format a media type names (parameters after ';' ignored, case-insensitive): image/png, image/jpeg (image/jpg),
 * image/x-portable-anymap, image/x-portable-graymap, image/x-portable-pixmap; ACM_IMAGE_UNKNOWN otherwise. */
acm_image_format acm_image_format_from_type(const char *media_type);

/* Reads the header only: format, dimensions, channels. Checks nothing but the header. */
int acm_image_probe(acm_image_info *info, const uint8_t *buf, size_t len, char *err, size_t errlen);

/* Decodes, converts and normalises: out [C, S, S]. */
int acm_image_to_tensor(float *out, const uint8_t *buf, size_t len, const acm_image_params *p, char *err,
                        size_t errlen);

/* The same conversion from raw pixels already decoded: hwc [H, W, c] uint8 with c in 1..4. */
int acm_image_u8_to_tensor(float *out, const uint8_t *hwc, int h, int w, int c, const acm_image_params *p, char *err,
                           size_t errlen);

#endif
