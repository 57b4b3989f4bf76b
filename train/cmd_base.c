/*
 * cmd_base.c — `acm-train base`: trains the static ViT on Fashion-MNIST (issue 3).
 *
 * Loop: batch (order + augmentation from two checkpointed RNG streams) -> engine forward with an activation record ->
 * backward (vit_train.c) -> global-norm clip -> AdamW with warm-up + cosine -> every log_every steps a CSV row, every
 * epoch a validation pass. A checkpoint (ckpt.h) is written every ckpt_every_s seconds, at --max-steps, at the end,
 * and on SIGINT/SIGTERM (the handler only sets a flag; the loop saves after the current step and exits 0). --resume
 * restores every tensor and RNG state and the CSV is cut back to the checkpoint's step, so the continuation is bit
 * for bit the run that was never interrupted (same thread count: OpenBLAS is deterministic for a fixed one).
 * At the end the model is written to --out (timm names, model metadata) and evaluated on the test set through the
 * engine's public API (cmd_eval.c); the figures are stored in the file's metadata.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acm.h"
#include "cpu/cpu.h"
#include "kernels.h"
#include "train/base_config.h"
#include "train/ckpt.h"
#include "train/commands.h"
#include "train/data.h"
#include "train/eval.h"
#include "train/optim.h"
#include "train/progress.h"
#include "train/rng.h"
#include "train/run_common.h"
#include "train/vit_train.h"

static void usage(FILE *f) {
    fprintf(f, "usage: acm-train base --out MODEL.safetensors [options]\n"
               "  --config FILE.json     training configuration (keys below; default: all defaults)\n"
               "  --out PATH             the trained model (required)\n"
               "  --ckpt PATH            checkpoint file (default: OUT.ckpt)\n"
               "  --csv PATH             training log (default: OUT.csv)\n"
               "  --resume               continue from --ckpt (its stored configuration wins over --config)\n"
               "  --epochs N             with --resume: change the run's length to N epochs (the cosine schedule\n"
               "                         is recomputed for the new total; N must lie beyond the current step)\n"
               "  --max-steps N          stop (with a checkpoint) after step N; 0 = run to the end (default 0)\n"
               "  --no-final             at the end, skip writing --out and the test evaluation\n"
               "  --snapshot-at S        also write the model as OUT.at-Ss.safetensors when the training time\n"
               "                         (seconds of steps, summed over resumes) first reaches S (default off)\n"
               "  --quiet                no progress output\n"
               "  --test-sigterm-at N    raise SIGTERM after step N (tests of the signal path; default off)\n\n");
    acmt_base_config_help();
}

/* Everything that a checkpoint holds besides the tensors. */
typedef struct {
    int64_t step, epoch, pos;
    acmt_rng rng_order, rng_aug;
    double train_seconds; /* accumulated over sessions, training steps only */
    double best_val_acc;
} run_state;

static json_t *state_json(const run_state *s, const acmt_base_config *c) {
    char ho[65], ha[65];
    acmt_rng_to_hex(&s->rng_order, ho);
    acmt_rng_to_hex(&s->rng_aug, ha);
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string("base"));
    json_object_set_new(o, "step", json_integer(s->step));
    json_object_set_new(o, "epoch", json_integer(s->epoch));
    json_object_set_new(o, "pos", json_integer(s->pos));
    json_object_set_new(o, "rng_order", json_string(ho));
    json_object_set_new(o, "rng_aug", json_string(ha));
    json_object_set_new(o, "train_seconds", json_real(s->train_seconds));
    json_object_set_new(o, "best_val_acc", json_real(s->best_val_acc));
    json_object_set_new(o, "config", acmt_base_config_json(c));
    json_object_set_new(o, "blas_core", json_string(acm_blas_core()));
    return o;
}

static int state_from_json(run_state *s, const json_t *o, char *err, size_t errlen) {
    json_t *st = json_object_get(o, "step"), *ep = json_object_get(o, "epoch"), *pos = json_object_get(o, "pos");
    if (!json_is_integer(st) || !json_is_integer(ep) || !json_is_integer(pos) ||
        acmt_rng_from_hex(&s->rng_order, json_string_value(json_object_get(o, "rng_order"))) ||
        acmt_rng_from_hex(&s->rng_aug, json_string_value(json_object_get(o, "rng_aug")))) {
        snprintf(err, errlen, "checkpoint state incomplete (step, epoch, pos, rng_order, rng_aug)");
        return -1;
    }
    s->step = json_integer_value(st);
    s->epoch = json_integer_value(ep);
    s->pos = json_integer_value(pos);
    s->train_seconds = json_number_value(json_object_get(o, "train_seconds"));
    s->best_val_acc = json_number_value(json_object_get(o, "best_val_acc"));
    return 0;
}

/* Mean loss (no smoothing) and accuracy over a whole set, no augmentation. */
static void evaluate_set(acmt_vit *v, const acmt_images *set, float *x, int32_t *y, int32_t *idx, int B,
                         double *loss, double *acc) {
    double L = 0;
    int64_t correct = 0;
    for (int64_t i = 0; i < set->n; i += B) {
        int n = (int)(set->n - i < B ? set->n - i : B);
        for (int b = 0; b < n; b++) idx[b] = (int32_t)(i + b);
        acmt_make_batch(x, y, set, idx, n, NULL, NULL);
        char err[256];
        if (acmt_vit_forward(v, x, n, err, sizeof err)) {
            fprintf(stderr, "acm-train base: %s\n", err);
            abort();
        }
        L += acm__crossentropy_forward(NULL, v->probs, v->acts.logits, y, n, v->cfg.num_classes, 0.0f) * n;
        correct += acmt_vit_correct(v, y, n);
    }
    *loss = L / (double)set->n;
    *acc = (double)correct / (double)set->n;
}

int cmd_base(int argc, char **argv) {
    acmt_run_args ra = {.me = "acm-train base", .sigterm_at = -1, .max_epochs = 100000, .epochs_rule = ">= 1"};
    double snapshot_at = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        const int took = acmt_run_args_take(&ra, argc, argv, &i);
        if (took == 2) return 2;
        if (took) continue;
        if (!strcmp(a, "--snapshot-at") && i + 1 < argc) {
            snapshot_at = strtod(argv[++i], NULL);
            continue;
        }
        fprintf(stderr, "acm-train base: unknown or incomplete option '%s'\n", a);
        usage(stderr);
        return 2;
    }
    if (acmt_run_args_check(&ra, usage)) return 2;
    const char *config_path = ra.config, *out = ra.out, *ckpt_path = ra.ckpt_path, *csv_path = ra.csv_path;
    const int resume = ra.resume, quiet = ra.quiet, no_final = ra.no_final;
    const int64_t max_steps = ra.max_steps, sigterm_at = ra.sigterm_at;
    const long new_epochs = ra.new_epochs;
    char err[1024];

    acmt_base_config cfg = acmt_base_config_default();
    json_t *resume_state = NULL;
    if (config_path && !resume) {
        json_error_t je;
        json_t *j = json_load_file(config_path, 0, &je);
        if (!j) {
            fprintf(stderr, "acm-train base: %s:%d: %s\n", config_path, je.line, je.text);
            return 1;
        }
        int rc = acmt_base_config_apply(&cfg, j, err, sizeof err);
        json_decref(j);
        if (rc) {
            fprintf(stderr, "acm-train base: %s: %s\n", config_path, err);
            return 1;
        }
    }
    /* The checkpoint's own tensors are read after the model exists; its configuration is needed first. */
    if (resume) {
        json_t *st = NULL;
        if (acmt_ckpt_read(ckpt_path, NULL, 0, &st, err, sizeof err)) {
            fprintf(stderr, "acm-train base: --resume: %s\n", err);
            return 1;
        }
        if (acmt_base_config_apply(&cfg, json_object_get(st, "config"), err, sizeof err)) {
            fprintf(stderr, "acm-train base: %s: %s\n", ckpt_path, err);
            json_decref(st);
            return 1;
        }
        resume_state = st;
        if (new_epochs) cfg.epochs = (int)new_epochs;
    }
    acm_blas_set_threads(cfg.threads);

    acmt_images all, train, val;
    if (acmt_images_load(&all, cfg.data_dir, "train", err, sizeof err)) {
        fprintf(stderr, "acm-train base: %s\n", err);
        json_decref(resume_state);
        return 1;
    }
    if (acmt_images_split(&train, &val, &all, cfg.val_size, (uint64_t)cfg.split_seed, cfg.train_limit, err,
                          sizeof err)) {
        fprintf(stderr, "acm-train base: %s\n", err);
        acmt_images_free(&all);
        json_decref(resume_state);
        return 1;
    }
    acmt_images_free(&all);
    const int B = cfg.batch_size;
    if (train.n < B) {
        fprintf(stderr, "acm-train base: %lld training images, fewer than one batch of %d\n", (long long)train.n, B);
        acmt_images_free(&train);
        acmt_images_free(&val);
        json_decref(resume_state);
        return 1;
    }

    acmt_vit_config vc;
    acmt_base_config_vit(&cfg, &vc, err, sizeof err); /* checked by acmt_base_config_apply */
    acmt_vit *v = acmt_vit_new(&vc, B, err, sizeof err);
    int32_t *order = malloc(sizeof(int32_t) * (size_t)train.n), *y = malloc(sizeof(int32_t) * (size_t)B),
            *idx = malloc(sizeof(int32_t) * (size_t)B), *y2 = malloc(sizeof(int32_t) * (size_t)B);
    float *x = malloc(sizeof(float) * (size_t)B * cfg.image_size * cfg.image_size);
    int status = 1;
    if (!v || !order || !y || !idx || !x || !y2) {
        fprintf(stderr, "acm-train base: %s\n", v ? "out of memory" : err);
        goto done;
    }

    run_state s = {0};
    acmt_ckpt_entry ce[4] = {{"params", 0, v->nparams, v->params},
                             {"adam_m", 0, v->nparams, v->m},
                             {"adam_v", 0, v->nparams, v->v},
                             {"order", 1, train.n, order}};
    if (resume) {
        json_t *st = NULL;
        if (acmt_ckpt_read(ckpt_path, ce, 4, &st, err, sizeof err) || state_from_json(&s, st, err, sizeof err)) {
            fprintf(stderr, "acm-train base: --resume: %s\n", err);
            json_decref(st);
            goto done;
        }
        json_decref(st);
        if (acmt_csv_truncate(csv_path, s.step))
            fprintf(stderr, "acm-train base: warning: cannot trim %s\n", csv_path);
    } else {
        acmt_rng rng_init;
        acmt_rng_seed(&rng_init, (uint64_t)cfg.seed, 1);
        acmt_rng_seed(&s.rng_order, (uint64_t)cfg.seed, 2);
        acmt_rng_seed(&s.rng_aug, (uint64_t)cfg.seed, 3);
        acmt_vit_init(v, &rng_init);
        for (int64_t i = 0; i < train.n; i++) order[i] = (int32_t)i;
        acmt_rng_shuffle(&s.rng_order, order, train.n);
        if (acmt_csv_create(csv_path, "step,epoch,images,lr,loss,acc,grad_norm,img_per_s,train_s,val_loss,val_acc")) {
            fprintf(stderr, "acm-train base: %s: %s\n", csv_path, strerror(errno));
            goto done;
        }
    }
    FILE *csv = fopen(csv_path, "a");
    if (!csv) {
        fprintf(stderr, "acm-train base: %s: %s\n", csv_path, strerror(errno));
        goto done;
    }

    const int64_t steps_per_epoch = train.n / B, total = steps_per_epoch * cfg.epochs;
    if (new_epochs && s.step >= total) {
        fprintf(stderr, "acm-train base: --epochs %ld: %lld steps in all, but the checkpoint is at step %lld\n",
                new_epochs, (long long)total, (long long)s.step);
        fclose(csv);
        goto done;
    }
    const int64_t stop_at = max_steps > 0 && max_steps < total ? max_steps : total;
    acmt_adamw opt = {.beta1 = (float)cfg.beta1, .beta2 = (float)cfg.beta2, .eps = (float)cfg.eps,
                      .weight_decay = (float)cfg.weight_decay};
    acmt_augment aug = {.crop_pad = cfg.crop_pad, .flip = (float)cfg.flip, .erase_prob = (float)cfg.erase_prob,
                        .erase_min = 0.02f, .erase_max = 0.25f};
    const acmt_mix mix = {.mixup_prob = (float)cfg.mixup_prob, .cutmix_prob = (float)cfg.cutmix_prob,
                          .mixup_alpha = (float)cfg.mixup_alpha, .cutmix_alpha = (float)cfg.cutmix_alpha};
    const double flops_step = 3.0 * acmt_vit_forward_flops(&vc) * B;
    if (!quiet)
        fprintf(stderr,
                "acm-train base: %lld parameters, %lld train / %lld val images, %lld steps (%lld/epoch), "
                "%.2f GFLOP/step, BLAS %s x%d%s\n",
                (long long)v->nparams, (long long)train.n, (long long)val.n, (long long)total,
                (long long)steps_per_epoch, flops_step / 1e9, acm_blas_core(), cfg.threads,
                resume ? " (resumed)" : "");

    acmt_signals sigs;
    acmt_signals_catch(&sigs);

    acmt_progress prog;
    acmt_progress_start(&prog, quiet);
    double last_ckpt = acmt_now_s(), win_loss = 0, win_gn = 0, win_time = 0;
    int64_t win_correct = 0, win_n = 0, win_steps = 0;
    double session_steps_time = 0;
    int64_t session_steps = 0;
    status = 0;
    while (s.step < stop_at) {
        double t0 = acmt_now_s();
        if (s.pos + B > train.n) {
            s.epoch++;
            s.pos = 0;
            acmt_rng_shuffle(&s.rng_order, order, train.n);
        }
        acmt_make_batch(x, y, &train, order + s.pos, B, &aug, &s.rng_aug);
        const float lam = acmt_mix_batch(x, y2, y, B, 1, cfg.image_size, cfg.image_size, &mix, &s.rng_aug);
        s.pos += B;
        if (acmt_vit_forward(v, x, B, err, sizeof err)) {
            fprintf(stderr, "acm-train base: %s\n", err);
            status = 1;
            break;
        }
        int correct = 0;
        double loss = lam < 1 ? acmt_vit_backward_mixed(v, y, y2, lam, B, (float)cfg.label_smoothing, &correct)
                              : acmt_vit_backward(v, y, B, (float)cfg.label_smoothing, &correct);
        double gn = acmt_clip_grad_norm(v->grads, v->nparams, cfg.grad_clip);
        opt.lr = acmt_lr_schedule(s.step, total, cfg.warmup_steps, (float)cfg.lr, (float)cfg.lr_min);
        for (int i = 0; i < v->ntab; i++) {
            const acmt_param *p = &v->tab[i];
            acmt_adamw_update(&opt, v->params + p->offset, v->grads + p->offset, v->m + p->offset, v->v + p->offset,
                              p->numel, s.step + 1, p->decay);
        }
        s.step++;
        double dt = acmt_now_s() - t0;
        int snapshot = snapshot_at > 0 && s.train_seconds < snapshot_at && s.train_seconds + dt >= snapshot_at;
        s.train_seconds += dt;
        session_steps_time += dt;
        session_steps++;
        win_loss += loss;
        win_gn += gn;
        win_correct += correct;
        win_n += B;
        win_steps++;
        win_time += dt;
        if (!isfinite(loss)) {
            fprintf(stderr, "\nacm-train base: loss is %g at step %lld; stopping (checkpoint kept as it was)\n", loss,
                    (long long)s.step);
            status = 1;
            break;
        }
        if (snapshot) {
            /* the model as it is after this step: for "accuracy reached at N hours" (evaluate it with acm-train eval) */
            char snap[4200], extra[512];
            snprintf(snap, sizeof snap, "%s.at-%.0fs.safetensors", out, snapshot_at);
            snprintf(extra, sizeof extra,
                     "{\"train\": {\"steps\": %lld, \"seed\": %lld, \"train_seconds\": %.1f, \"snapshot\": true}}",
                     (long long)s.step, (long long)cfg.seed, s.train_seconds);
            if (acmt_vit_save_model(v, snap, extra, err, sizeof err))
                fprintf(stderr, "\nacm-train base: snapshot: %s\n", err);
            else
                acmt_progress_note(&prog, "snapshot after %.0f s of training (step %lld): %s", s.train_seconds,
                                   (long long)s.step, snap);
        }
        double ips = session_steps * (double)B / session_steps_time;
        int end_of_epoch = s.step % steps_per_epoch == 0 || s.step == total;
        if (s.step % cfg.log_every == 0 || end_of_epoch || s.step == stop_at) {
            double vl = NAN, va = NAN;
            if (end_of_epoch) {
                evaluate_set(v, &val, x, y, idx, B, &vl, &va);
                if (va > s.best_val_acc) s.best_val_acc = va;
            }
            fprintf(csv, "%lld,%.4f,%lld,%.6g,%.6f,%.6f,%.4f,%.2f,%.1f,", (long long)s.step,
                    (double)s.step / steps_per_epoch, (long long)(s.step * B), opt.lr, win_loss / win_steps,
                    (double)win_correct / win_n, win_gn / win_steps, win_n / win_time, s.train_seconds);
            if (end_of_epoch) fprintf(csv, "%.6f,%.6f\n", vl, va);
            else fprintf(csv, ",\n");
            fflush(csv);
            if (end_of_epoch && !quiet)
                acmt_progress_note(&prog, "epoch %.2f: val loss %.4f, val acc %.2f%% (best %.2f%%)",
                                   (double)s.step / steps_per_epoch, vl, 100 * va, 100 * s.best_val_acc);
            win_loss = win_gn = win_time = 0;
            win_correct = win_n = win_steps = 0;
        }
        acmt_progress_update(&prog, s.step, total, loss, (double)correct / B, ips,
                             (double)(total - s.step) * session_steps_time / session_steps);
        if (sigterm_at >= 0 && s.step == sigterm_at) raise(SIGTERM);
        int want_ckpt = acmt_stop_signal || s.step == stop_at || acmt_now_s() - last_ckpt >= cfg.ckpt_every_s;
        if (want_ckpt) {
            json_t *st = state_json(&s, &cfg);
            if (acmt_ckpt_write(ckpt_path, ce, 4, st, err, sizeof err)) {
                fprintf(stderr, "\nacm-train base: checkpoint: %s\n", err);
                status = 1;
            }
            json_decref(st);
            last_ckpt = acmt_now_s();
        }
        if (acmt_stop_signal) {
            acmt_progress_note(&prog, "signal %d: stopped at step %lld; checkpoint %s; continue with --resume",
                               (int)acmt_stop_signal, (long long)s.step, ckpt_path);
            break;
        }
    }
    acmt_progress_end(&prog);
    fclose(csv);
    acmt_signals_restore(&sigs);

    if (status == 0 && !acmt_stop_signal && s.step == total && !no_final) {
        double vl, va;
        evaluate_set(v, &val, x, y, idx, B, &vl, &va);
        char extra[1024];
        snprintf(extra, sizeof extra,
                 "{\"train\": {\"steps\": %lld, \"epochs\": %d, \"seed\": %lld, \"train_seconds\": %.1f, "
                 "\"val_acc\": %.6f, \"val_loss\": %.6f}}",
                 (long long)s.step, cfg.epochs, (long long)cfg.seed, s.train_seconds, va, vl);
        if (acmt_vit_save_model(v, out, extra, err, sizeof err)) {
            fprintf(stderr, "acm-train base: %s\n", err);
            status = 1;
        } else {
            acmt_eval_result ev;
            if (acmt_eval_model(out, cfg.data_dir, B, acm_policy_default(), &ev, err, sizeof err)) {
                fprintf(stderr, "acm-train base: test evaluation: %s\n", err);
                status = 1;
            } else {
                snprintf(extra, sizeof extra,
                         "{\"train\": {\"steps\": %lld, \"epochs\": %d, \"seed\": %lld, \"train_seconds\": %.1f, "
                         "\"val_acc\": %.6f, \"val_loss\": %.6f}, \"eval\": {\"test_acc\": %.6f, \"test_n\": %lld}}",
                         (long long)s.step, cfg.epochs, (long long)cfg.seed, s.train_seconds, va, vl, ev.accuracy,
                         (long long)ev.n);
                if (acmt_vit_save_model(v, out, extra, err, sizeof err)) {
                    fprintf(stderr, "acm-train base: %s\n", err);
                    status = 1;
                }
                if (!quiet)
                    fprintf(stderr, "acm-train base: wrote %s: val acc %.2f%%, test acc %.2f%%, %.1f s of training\n",
                            out, 100 * va, 100 * ev.accuracy, s.train_seconds);
            }
        }
    }
done:
    json_decref(resume_state);
    acmt_vit_free(v);
    free(order);
    free(y);
    free(y2);
    free(idx);
    free(x);
    acmt_images_free(&train);
    acmt_images_free(&val);
    return status;
}
