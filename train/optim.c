/*
 * optim.c — AdamW, schedule and clipping (see optim.h).
 */
#include "train/optim.h"

#include <math.h>

acmt_adamw acmt_adamw_default(void) {
    acmt_adamw o = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.05f};
    return o;
}

void acmt_adamw_update(const acmt_adamw *o, float *param, const float *grad, float *m, float *v, int64_t n, int64_t t,
                       int decay) {
    /* bias corrections in double: beta^t for large t underflows gracefully to 0 */
    float c1 = (float)(1.0 / (1.0 - pow(o->beta1, (double)t)));
    float c2 = (float)(1.0 / (1.0 - pow(o->beta2, (double)t)));
    float wd = decay ? o->lr * o->weight_decay : 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        m[i] = o->beta1 * m[i] + (1.0f - o->beta1) * g;
        v[i] = o->beta2 * v[i] + (1.0f - o->beta2) * g * g;
        float mh = m[i] * c1, vh = v[i] * c2;
        param[i] -= o->lr * mh / (sqrtf(vh) + o->eps) + wd * param[i];
    }
}

float acmt_lr_schedule(int64_t step, int64_t total, int64_t warmup, float lr_max, float lr_min) {
    if (warmup > 0 && step < warmup) return lr_max * (float)(step + 1) / (float)warmup;
    int64_t span = total - 1 - warmup;
    if (span <= 0) return lr_max;
    double p = (double)(step - warmup) / (double)span;
    if (p > 1.0) p = 1.0;
    return (float)(lr_min + 0.5 * (lr_max - lr_min) * (1.0 + cos(3.14159265358979323846 * p)));
}

double acmt_clip_grad_norm(float *g, int64_t n, double max_norm) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)g[i] * g[i];
    double norm = sqrt(s);
    if (max_norm > 0 && norm > max_norm) {
        float f = (float)(max_norm / (norm + 1e-6));
        for (int64_t i = 0; i < n; i++) g[i] *= f;
    }
    return norm;
}
