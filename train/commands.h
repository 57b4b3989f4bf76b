/*
 * commands.h — the acm-train sub-commands. Each takes (argc, argv) with argv[0] = the command name, prints its own
 * --help, and returns the process exit status (0 ok, 1 failure, 2 bad usage).
 */
#ifndef ACM_TRAIN_COMMANDS_H
#define ACM_TRAIN_COMMANDS_H

/* X(name, function, one-line summary): one line per command; main.c builds the dispatch and the help from it. */
#define ACM_TRAIN_COMMANDS(X)                                                                    \
    X("info", cmd_info, "print a model's architecture, parameters, FLOPs, ACM layout, budget table") \
    X("acmize", cmd_acmize, "convert a static ViT or speech model into an ACM model: the three phases of the paper") \
    X("calibrate", cmd_calibrate, "lambda(beta) and per-module CAP shares on held-out images, into the model") \
    X("export", cmd_export, "write the model of a base-training checkpoint (a run in progress)") \
    X("report", cmd_report, "model-card figures: accuracy vs GFLOPs, heatmaps, cost and k histograms") \
    X("heatmaps", cmd_heatmaps, "compute maps of the same test images under several models, one row each (PNG)") \
    X("predict", cmd_predict, "classify the first Fashion-MNIST test images, with FLOPs and compute maps") \
    X("examples", cmd_examples, "write clients/examples/: one Fashion-MNIST test image per class as PNG, listed") \
    X("base", cmd_base, "train the static ViT on Fashion-MNIST (checkpoints, --resume)")          \
    X("eval", cmd_eval, "test accuracy, per-class accuracy and confusion matrix of a model")       \
    X("plot", cmd_plot, "loss and accuracy curves of a training CSV as PNG (gnuplot)")             \
    ACM_TRAIN_COMMANDS_SPEECH(X)

/* Speech commands live in their own list so that their files can grow apart. */
#define ACM_TRAIN_COMMANDS_SPEECH(X)                                                                          \
    X("speech-corpus", cmd_speech_corpus, "synthesise the speech corpus: espeak-ng/flite/festival, sox, fp16 log-mel") \
    X("speech-text", cmd_speech_text, "print planned utterances of the speech corpus (text, voice, augmentation)") \
    X("speech-base", cmd_speech_base, "train the static speech encoder with CTC on the corpus (checkpoints, --resume)") \
    X("speech-report", cmd_speech_report, "speech model-card figures: WER vs GFLOPs per second of audio, compute along the spectrogram") \
    X("speech-card", cmd_speech_card, "a speech model card's subset_wer keys: print them, or --check a card against its model")

#define X(name, fn, help) int fn(int argc, char **argv);
ACM_TRAIN_COMMANDS(X)
#undef X

/* `acm-train eval` on a speech model (cmd_eval.c hands it over; same arguments). */
int cmd_speech_eval(int argc, char **argv);
/* `acm-train acmize` on a speech base model (acmize.c hands it over). */
int cmd_speech_acmize(int argc, char **argv);

#endif
