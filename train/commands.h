/*
 * commands.h — the acm-train sub-commands. Each takes (argc, argv) with argv[0] = the command name, prints its own
 * --help, and returns the process exit status (0 ok, 1 failure, 2 bad usage).
 */
#ifndef ACM_TRAIN_COMMANDS_H
#define ACM_TRAIN_COMMANDS_H

/* X(name, function, one-line summary): one line per command; main.c builds the dispatch and the help from it. */
#define ACM_TRAIN_COMMANDS(X)                                                                    \
    X("info", cmd_info, "print a model's architecture, parameters, FLOPs, ACM layout, budget table") \
    ACM_TRAIN_COMMANDS_SPEECH(X)

/* Speech commands live in their own list so that their files can grow apart. */
#define ACM_TRAIN_COMMANDS_SPEECH(X)

#define X(name, fn, help) int fn(int argc, char **argv);
ACM_TRAIN_COMMANDS(X)
#undef X

#endif
