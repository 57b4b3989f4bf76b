/*
 * image.h — request image bytes -> the model's normalised input tensor [C, S, S]. Pure functions over the caller's
 * buffers: no I/O, no globals, no threads, no prints; every function is thread-safe. Errors are negative ACM_IMAGE_E*
 * codes with a message in the caller's buffer; on error the contents of `out` are undefined.
 *
 * Accepted formats (sniffed from the first bytes; the request's media type is checked separately, see
 * acm_image_format_from_type):
 *   PNG   via libspng: every colour type and bit depth (grey, grey + alpha, RGB, RGBA, palette; tRNS; 1..16 bits;
 *         Adam7 interlacing). Every chunk's CRC (ancillary chunks too) and the zlib stream's Adler-32 are checked
 *         and the file is read on to its IEND chunk: a corrupted PNG, or one cut anywhere before IEND, is refused
 *         (ACM_IMAGE_EDECODE), never half-read.
 *   JPEG  via libturbojpeg: baseline and progressive, grey or YCbCr; a file cut before its end marker is refused
 *         (libjpeg's other warnings are not: the image is whole). When the model's input is smaller than the image
 *         the decoder's DCT scaling (1/8 .. 1) picks the smallest scaled size that is still >= the target in both
 *         dimensions, so a large photo costs a fraction of a full decode.
 *   PNM   P1/P4 (PBM, bitmap: 1 is black), P2/P5 (PGM, grey) and P3/P6 (PPM, RGB), ASCII or binary, any maxval
 *         1..65535 (two bytes big-endian per sample in binary files when maxval > 255), '#' comments in the header.
 *
 * Memory: PNG and PNM are decoded row by row into the resampler (below), so a decode holds O(width + height) bytes
 * plus the [C, S, S] accumulator, never the whole image; JPEG holds its DCT-scaled image (and, when progressive, the
 * DCT coefficients of the whole image: libjpeg needs them). acm_image_decode_bytes() bounds it from the header
 * before anything is decoded, and max_decode_bytes refuses (ACM_IMAGE_ETOOBIG) an image over it. The pixel limit is
 * checked against the header's width x height before any pixel is decoded (ACM_IMAGE_ETOOBIG); it bounds the
 * decode's time, which does grow with the pixels.
 *
 * Conversion, pixel by pixel as rows arrive (values stay in [0, 255] as float until the last step):
 *   1. channels: grey -> RGB by copying; RGB -> grey by ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B (a pixel with
 *      R = G = B keeps its value exactly).
 *   2. alpha (grey + alpha, RGBA, palette or colour key with tRNS): composited over `background`,
 *      v = a v + (1 - a) background with a = alpha / max; an opaque pixel keeps its value exactly.
 *   3. size: ACM_IMAGE_FIT_STRETCH resamples the image to S x S whatever its aspect ratio; ACM_IMAGE_FIT_LETTERBOX
 *      resamples it to fit inside S x S with its aspect ratio kept (the longer side becomes S, rounded), centred, the
 *      margins filled with `background`. Resampling is separable: area averaging where an axis is reduced (each
 *      output pixel the mean of the input area it covers), bilinear where it is enlarged, and an axis already of the
 *      target length is copied unchanged.
 *   4. normalisation: x = (v / 255 - mean[c]) / std[c], in float, the same expression as acm-train eval, so a PNG of
 *      a Fashion-MNIST image gives bit-identical input.
 */
#ifndef ACM_PROTO_IMAGE_H
#define ACM_PROTO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

enum {
    ACM_IMAGE_EFORMAT = -1, /* not PNG, JPEG or PNM; or an unsupported variant */
    ACM_IMAGE_EDECODE = -2, /* malformed, corrupted (checksum) or truncated image data */
    ACM_IMAGE_ETOOBIG = -3, /* width x height over the pixel limit (from the header) */
    ACM_IMAGE_ENOMEM = -4,
    ACM_IMAGE_EINVAL = -5, /* bad parameters (target size, channels, fit) */
};

typedef enum { ACM_IMAGE_UNKNOWN = 0, ACM_IMAGE_PNG, ACM_IMAGE_JPEG, ACM_IMAGE_PNM } acm_image_format;

/* How an image whose aspect ratio is not the model's (square) is fitted; see step 3 above. */
typedef enum { ACM_IMAGE_FIT_STRETCH = 0, ACM_IMAGE_FIT_LETTERBOX } acm_image_fit;

typedef struct {
    acm_image_format format;
    int width, height;
    int channels;    /* in the file: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA (palette PNGs report 3 or 4; CMYK JPEGs 4) */
    int progressive; /* JPEG: progressive (its decoder holds every DCT coefficient of the image); 0 otherwise */
    float coded_samples; /* JPEG: samples coded per pixel after chroma subsampling: 1 grey, 1.5 (4:2:0, 4:1:1),
                          * 2 (4:2:2, 4:4:0), 3 (4:4:4), 4 (CMYK); 0 otherwise */
} acm_image_info;

typedef struct {
    int size;            /* S: target width and height */
    int channels;        /* C: 1 or 3 */
    float mean[3], std[3];
    int64_t max_pixels;  /* width x height limit; <= 0: no limit */
    acm_image_fit fit;   /* default (0): stretch; the server always stretches (docs/API.md, "Images", says why) */
    float background[3]; /* [0, 255] per output channel: under transparent pixels and in letterbox margins */
    size_t max_decode_bytes; /* acm_image_decode_bytes() limit, checked before decoding; 0: no limit */
} acm_image_params;

const char *acm_image_format_name(acm_image_format f);

/* Format from the magic bytes; ACM_IMAGE_UNKNOWN if none matches. */
acm_image_format acm_image_sniff(const uint8_t *buf, size_t len);
/* Format a media type names (parameters after ';' ignored, case-insensitive): image/png, image/jpeg (image/jpg),
 * image/x-portable-anymap, image/x-portable-bitmap, image/x-portable-graymap, image/x-portable-pixmap;
 * ACM_IMAGE_UNKNOWN otherwise. */
acm_image_format acm_image_format_from_type(const char *media_type);

/* Reads the header only: format, dimensions, channels. Checks nothing but the header. */
int acm_image_probe(acm_image_info *info, const uint8_t *buf, size_t len, char *err, size_t errlen);

/* An upper bound on the heap bytes acm_image_to_tensor allocates (libraries included) to decode an image with this
 * header under these parameters, `out` not counted. Known from the header, before any pixel is decoded. */
size_t acm_image_decode_bytes(const acm_image_info *info, const acm_image_params *p);

/* Decodes, converts and normalises: out [C, S, S]. */
int acm_image_to_tensor(float *out, const uint8_t *buf, size_t len, const acm_image_params *p, char *err,
                        size_t errlen);

/* The same conversion from raw pixels already decoded: hwc [H, W, c] uint8 with c in 1..4 (2 and 4: the last
 * channel is alpha). */
int acm_image_u8_to_tensor(float *out, const uint8_t *hwc, int h, int w, int c, const acm_image_params *p, char *err,
                           size_t errlen);

#endif
