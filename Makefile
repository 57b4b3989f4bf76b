# acm: build, test, serve.  `make help` lists the targets and knobs.
#
# Layout (docs/DESIGN.md §1): every folder's sources are picked up by wildcard, so adding a file needs no edit here.
#   engine/*.c engine/cpu/*.c -> $(B)/libacm.a        (OpenBLAS, fftw3f, jansson)
#   proto/*.c                 -> $(B)/libacmproto.a   (jansson, spng, turbojpeg, sndfile, soxr, zlib, libwslay, nettle)
#   train/*.c                 -> $(B)/acm-train
#   server/*.c                -> $(B)/acmd            (libmicrohttpd, GnuTLS, libuv)
#   clients/*.c               -> $(B)/acm             (libcurl)
#   tests/<dir>/test_*.c      -> $(B)/tests/<dir>/test_*  (Criterion; linked with everything above but mains)
# A program's main() lives in <folder>/main.c; every other file of the folder goes into the folder's library so that
# tests can link it.

CC       ?= cc
SANITIZE ?=
comma    := ,
WERROR   ?= $(if $(CI),1,0)
OPT      ?= -O2

# CUDA=1: the build with the CUDA backend (engine/cuda/, linked with the CUDA runtime and cuBLAS) in build/cuda.
CUDA ?= 0
ifneq ($(filter-out 0 1,$(CUDA)),)
$(error CUDA must be 0 or 1 (got '$(CUDA)'))
endif
# BUNDLE_ROOT=DIR (with CUDA=1; bench/cuda_check.sh bundle): programs for a machine without our Debian libraries (a
# GPU machine's image), in build/bundle: their loader and libraries are looked up in DIR/lib, where the bundle's
# glibc and every library they link (bar CUDA's and the driver's) are unpacked.
BUNDLE_ROOT ?=
ifeq ($(SANITIZE),)
B := build$(if $(BUNDLE_ROOT),/bundle,$(if $(filter 1,$(CUDA)),/cuda))
else
ifneq ($(filter-out address undefined thread,$(subst $(comma), ,$(SANITIZE))),)
$(error SANITIZE must be a comma-separated subset of address,undefined,thread (got '$(SANITIZE)'))
endif
B := build/san-$(subst $(comma),-,$(SANITIZE))$(if $(filter 1,$(CUDA)),-cuda)
endif

ifneq ($(WERROR),0)
ifneq ($(WERROR),1)
$(error WERROR must be 0 or 1 (got '$(WERROR)'))
endif
endif

WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS  := -std=c11 -D_GNU_SOURCE $(OPT) -g -march=x86-64-v2 -fno-fast-math $(WARN) $(if $(filter 1,$(WERROR)),-Werror) \
           -I. -Iengine -Iproto -I/usr/include/openblas
LDFLAGS := $(if $(BUNDLE_ROOT),-Wl$(comma)--dynamic-linker=$(BUNDLE_ROOT)/lib/ld-linux-x86-64.so.2 -Wl$(comma)-rpath$(comma)$(BUNDLE_ROOT)/lib)
ifneq ($(SANITIZE),)
CFLAGS  += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer -O1
LDFLAGS += -fsanitize=$(SANITIZE)
endif

# BLAS: Debian's pthread OpenBLAS (openblas_get_corename, openblas_set_num_threads).
BLAS_LIBS   := -L/usr/lib/x86_64-linux-gnu/openblas-pthread -lopenblas
ENGINE_LIBS := $(BLAS_LIBS) -lfftw3f -ljansson -lnettle -lm -lpthread
PROTO_LIBS  := -ljansson -lspng -lturbojpeg -lsndfile -lsoxr -lz -lwslay -lnettle -lm
SERVER_LIBS := -lmicrohttpd -lgnutls -luv
CLIENT_LIBS := -lcurl
ALL_LIBS    := $(SERVER_LIBS) $(CLIENT_LIBS) $(PROTO_LIBS) $(ENGINE_LIBS)

ENGINE_SRC := $(wildcard engine/*.c engine/cpu/*.c)
PROTO_SRC  := $(wildcard proto/*.c)
TRAIN_SRC  := $(filter-out train/main.c,$(wildcard train/*.c))
SERVER_SRC := $(filter-out server/main.c,$(wildcard server/*.c))
CLIENT_SRC := $(filter-out clients/main.c,$(wildcard clients/*.c))
TEST_SRC   := $(wildcard tests/*/test_*.c)
TEST_BIN   := $(patsubst %.c,$(B)/%,$(TEST_SRC))
TEST_HELP  := $(filter-out $(TEST_SRC),$(wildcard tests/*/*.c))

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))

LIBACM    := $(B)/libacm.a
LIBPROTO  := $(B)/libacmproto.a
LIBTRAIN  := $(B)/libacmtrain.a
LIBSERVER := $(B)/libacmserver.a
LIBCLIENT := $(B)/libacmclient.a
LIBS_OURS := $(LIBTRAIN) $(LIBSERVER) $(LIBCLIENT) $(LIBPROTO) $(LIBACM)

PROGS := $(if $(wildcard train/main.c),$(B)/acm-train) $(if $(wildcard server/main.c),$(B)/acmd) \
         $(if $(wildcard clients/main.c),$(B)/acm)

# CUDA (docs/DESIGN.md §4, "Backends"): engine/cuda/*.cu is compiled wherever nvcc exists, in every build, so that
# it cannot rot (CI compiles it, -Werror there); only CUDA=1 links it in. Why not always: a binary linked with
# libcudart/libcublas needs them at run time, and the ordinary build must run where no CUDA toolkit is installed. The
# CUDA=1 build links the runtime and cuBLAS (rpath to the toolkit's lib64) but not the driver (libcuda.so), which the
# runtime opens itself: its binaries also start on a machine without a GPU or driver, and `--backend cuda` is then an
# error at start that says why. CUDA_ARCH: the GPU generation the kernels are built for (90: H100/H200), plus PTX.
NVCC      := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_HOME ?= $(if $(NVCC),$(patsubst %/bin/,%,$(dir $(realpath $(NVCC)))),/usr/local/cuda)
CUDA_ARCH ?= 90
CUDA_SRC  := $(wildcard engine/cuda/*.cu)
CUDA_OBJ  := $(if $(NVCC),$(patsubst %.cu,$(B)/obj/%.o,$(CUDA_SRC)))
NVCCFLAGS := -std=c++17 -O2 -g -I. -Iengine -Iproto -I/usr/include/openblas \
             -gencode arch=compute_$(CUDA_ARCH),code=[sm_$(CUDA_ARCH),compute_$(CUDA_ARCH)] \
             -Xcompiler -Wall,-Wextra,-Wshadow,-Wno-unused-parameter $(if $(filter 1,$(WERROR)),-Werror all-warnings)
ifeq ($(CUDA),1)
ifeq ($(NVCC),)
$(error CUDA=1 needs nvcc (not found on PATH nor in /usr/local/cuda/bin))
endif
CFLAGS    += -DACM_WITH_CUDA
NVCCFLAGS += -DACM_WITH_CUDA
ENGINE_LIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
ALL_LIBS  := $(SERVER_LIBS) $(CLIENT_LIBS) $(PROTO_LIBS) $(ENGINE_LIBS)
endif

.PHONY: soak all help deps test test-unit speech-subset FORCE check-env serve stop bench bench-build clean probe fuzz fuzz-build deploy-node browser-node image \
        cluster cluster-stop
.DEFAULT_GOAL := all

all: probe $(LIBACM) $(LIBPROTO) $(PROGS) $(CUDA_OBJ)

probe:
	@printf '%s\n' "acm build ($(B)): cc=$$($(CC) -dumpfullversion 2>/dev/null || echo ?) SANITIZE=$(if $(SANITIZE),$(SANITIZE),none) WERROR=$(WERROR)"
	@$(if $(CUDA_SRC),if [ -n "$(NVCC)" ]; then echo "  ✓ nvcc: $(NVCC) (CUDA backend $(if $(filter 1,$(CUDA)),compiled and linked in,compiled only: make CUDA=1 links it))"; else echo "  ✗ nvcc not found: CUDA backend skipped"; fi,:)
	@for h in cblas.h jansson.h fftw3.h microhttpd.h gnutls/gnutls.h uv.h spng.h turbojpeg.h sndfile.h soxr.h zlib.h curl/curl.h \
	          wslay/wslay.h criterion/criterion.h yaml.h; do \
	  if [ -e /usr/include/$$h ] || [ -e /usr/include/openblas/$$h ] || [ -e /usr/include/x86_64-linux-gnu/$$h ]; then :; \
	  else echo "  ✗ missing header $$h: run 'make deps'"; fi; done

# ---- dependencies (Debian 12) -------------------------------------------------------------------------------------
DEB_PKGS := pkg-config libopenblas-dev libjansson-dev libfftw3-dev libmicrohttpd-dev libgnutls28-dev libuv1-dev libspng-dev \
            libturbojpeg0-dev libsndfile1-dev libsoxr-dev zlib1g-dev libcurl4-openssl-dev libwslay-dev \
            libcriterion-dev libyaml-dev nettle-dev dataset-fashion-mnist gnuplot-nox \
            espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox pocketsphinx-testdata wrk \
            clang libclang-rt-14-dev curl openssl python3-numpy \
            systemd prometheus haproxy podman mmdebstrap chromium
# tests/reference: Debian's numpy (/usr/bin/python3) for the golden generators.
# deploy/ (tests/deploy): systemd-analyze, promtool and prometheus, haproxy, podman and mmdebstrap (make image).
# Commands that another package may already provide: COMMAND=PACKAGE installs PACKAGE only when COMMAND is missing
# (a kubectl from elsewhere owns /usr/bin/kubectl, and Debian's kubernetes-client would conflict with it).
DEB_CMDS := kubectl=kubernetes-client
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${db:Status-Status}\n' $$p 2>/dev/null | grep -qx installed || echo $$p; done; \
	            for c in $(DEB_CMDS); do command -v $${c%%=*} >/dev/null || echo $${c#*=}; done); \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	    || { echo "deps: apt-get failed"; exit 1; }; \
	fi

# npm packages of the deploy tests (tests/deploy/node: kubernetes-models' schemas for test_k8s), installed from the
# committed lock file into build/deploy-node (shared by every build, sanitizer ones included).
DEPLOY_NODE := build/deploy-node
$(DEPLOY_NODE)/node_modules/.package-lock.json: tests/deploy/node/package.json tests/deploy/node/package-lock.json
	@command -v npm >/dev/null || { echo "deploy-node: npm not found (Node.js 20 with npm is needed for tests/deploy/test_k8s)"; exit 1; }
	@mkdir -p $(DEPLOY_NODE)
	cp tests/deploy/node/package.json tests/deploy/node/package-lock.json $(DEPLOY_NODE)/
	cd $(DEPLOY_NODE) && npm ci --no-audit --no-fund --loglevel=error
deploy-node: $(DEPLOY_NODE)/node_modules/.package-lock.json

# npm packages of the browser test of the demo page (tests/server/browser: playwright-core, which drives Debian's
# chromium; tests/server/test_demo.c skips that test without them), installed from the committed lock file.
BROWSER_NODE := build/browser-node
$(BROWSER_NODE)/node_modules/.package-lock.json: tests/server/browser/package.json tests/server/browser/package-lock.json
	@command -v npm >/dev/null || { echo "browser-node: npm not found (Node.js with npm is needed for the demo page's browser test)"; exit 1; }
	@mkdir -p $(BROWSER_NODE)
	cp tests/server/browser/package.json tests/server/browser/package-lock.json $(BROWSER_NODE)/
	cd $(BROWSER_NODE) && npm ci --no-audit --no-fund --loglevel=error
browser-node: $(BROWSER_NODE)/node_modules/.package-lock.json

# ---- libraries and programs ---------------------------------------------------------------------------------------
$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIBACM): $(call obj,$(ENGINE_SRC)) $(if $(filter 1,$(CUDA)),$(CUDA_OBJ))
$(B)/obj/%.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@
$(LIBPROTO): $(call obj,$(PROTO_SRC))
$(LIBTRAIN): $(call obj,$(TRAIN_SRC))
$(LIBSERVER): $(call obj,$(SERVER_SRC))
$(LIBCLIENT): $(call obj,$(CLIENT_SRC))
$(B)/%.a:
	@mkdir -p $(@D)
	@rm -f $@
	ar rcs $@ $^ $(if $^,,$(B)/obj/.empty.o)

# An empty folder still gives a valid (empty) archive.
$(B)/obj/.empty.o:
	@mkdir -p $(@D)
	echo 'typedef int acm__empty_unit;' | $(CC) $(CFLAGS) -x c -c - -o $@
$(LIBTRAIN) $(LIBSERVER) $(LIBCLIENT): | $(B)/obj/.empty.o

$(B)/acm-train: $(call obj,train/main.c) $(LIBS_OURS)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBS_OURS) $(ALL_LIBS)
$(B)/acmd: $(call obj,server/main.c) $(LIBS_OURS)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBS_OURS) $(ALL_LIBS)
$(B)/acm: $(call obj,clients/main.c) $(LIBS_OURS)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBS_OURS) $(ALL_LIBS)

# ---- tests --------------------------------------------------------------------------------------------------------
$(B)/tests/%: tests/%.c $(call obj,$(TEST_HELP)) $(LIBS_OURS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(EXTRA_OBJS) $(call obj,$(TEST_HELP)) $(LIBS_OURS) $(ALL_LIBS) -lcriterion $(LDFLAGS)

# Fuzz targets (tests/fuzz/targets/fuzz_NAME.c) in the ordinary build: compiled with FUZZ_ENTRY=acm_fuzz_NAME and
# linked into tests/fuzz/test_replay, which runs every committed corpus file through them (gcc, sanitizers too).
FUZZ_SRC   := $(wildcard tests/fuzz/targets/fuzz_*.c)
FUZZ_NAMES := $(patsubst tests/fuzz/targets/fuzz_%.c,%,$(FUZZ_SRC))
FUZZ_REPLAY_OBJ := $(patsubst %,$(B)/obj/tests/fuzz/replay_%.o,$(FUZZ_NAMES))
$(B)/obj/tests/fuzz/replay_%.o: tests/fuzz/targets/fuzz_%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Itests/fuzz/targets -DFUZZ_ENTRY=acm_fuzz_$* -MMD -MP -c $< -o $@
$(B)/tests/fuzz/test_replay: EXTRA_OBJS = $(FUZZ_REPLAY_OBJ)
$(B)/tests/fuzz/test_replay: $(FUZZ_REPLAY_OBJ)

# The no-allocation tests count our own allocator calls through the linker (tests/engine/alloc_count.h): calls from our
# objects and libraries to malloc & co. go to its __wrap_ functions; OpenBLAS's and libc's own calls are not seen.
$(B)/tests/engine/test_noalloc $(B)/tests/engine/test_speech_noalloc $(B)/tests/engine/test_ctc: \
    LDFLAGS += -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc -Wl,--wrap=free \
               -Wl,--wrap=aligned_alloc -Wl,--wrap=posix_memalign

# server/demo.c embeds the demo page with .incbin, which the compiler's dependency files do not see.
$(B)/obj/server/demo.o: server/demo/index.html

# test_oip_spec reads the Open Inference Protocol's OpenAPI file (tests/server/oip/) with libyaml.
$(B)/tests/server/test_oip_spec: LDFLAGS += -lyaml

# The speech cards' test subset (tests/train/test_models.c, train/speech_card.h): the first 40 utterances of the
# corpus's test-seen and test-unseen splits (seed 1; the same bytes as in the full corpus), 4.7 minutes of audio,
# synthesised once per build folder (about 10 s). The command is the rule's dependency ($(B)/speech-subset.cmd is
# rewritten only when it changes); delete $(B)/speech-subset to rebuild it with a new synthesiser.
SPEECH_SUBSET_ARGS := --seed 1 --train 0 --val 0 --test-seen 40 --test-unseen 40 --no-real --jobs 2 --quiet
speech-subset: $(B)/speech-subset/corpus.json
$(B)/speech-subset.cmd: FORCE
	@mkdir -p $(@D)
	@echo 'acm-train speech-corpus $(SPEECH_SUBSET_ARGS)' | cmp -s - $@ || echo 'acm-train speech-corpus $(SPEECH_SUBSET_ARGS)' > $@
$(B)/speech-subset/corpus.json: $(B)/speech-subset.cmd | $(B)/acm-train
	rm -rf $(B)/speech-subset
	$(B)/acm-train speech-corpus --out $(B)/speech-subset $(SPEECH_SUBSET_ARGS)
FORCE:

# Every test binary runs with the repository root as its working directory; ACM_BUILD tells tests where programs are.
test: deps
	@$(MAKE) --no-print-directory all tests-build deploy-node browser-node speech-subset
	@ACM_BUILD=$(B) bash tests/run.sh $(TEST_BIN)

tests-build: $(TEST_BIN)

# make serve: acmd on the shipped models until `make stop` or Ctrl-C (both drain it); log in $(B)/acmd.log, warnings
# and errors on the terminal (deploy/serve.sh). ACMD_ARGS adds acmd options: make serve ACMD_ARGS='--listen :9000'.
ACMD_ARGS ?=
serve: deps
	@$(MAKE) --no-print-directory all
	@bash deploy/serve.sh $(B) $(ACMD_ARGS)

stop:
	@bash deploy/serve.sh $(B) --stop

# make image: acmd's container image from Debian packages (deploy/container/build-image.sh: mmdebstrap bases, podman
# build; a few minutes the first time). tests/deploy/test_container runs the built image's root file system, and says
# it skipped that when no image was built.
IMAGE ?= localhost/acm:latest
image: deps
	@bash deploy/container/build-image.sh $(B) $(IMAGE)

# make cluster: haproxy on 127.0.0.1:8090 in front of CLUSTER_N acmd instances, Prometheus on :9090
# (deploy/local-cluster.sh; ACMD_ARGS adds acmd options); make cluster-stop stops it.
CLUSTER_N ?= 2
cluster: deps
	@$(MAKE) --no-print-directory all
	@ACM_BUILD=$(B) bash deploy/local-cluster.sh start $(B)/cluster $(CLUSTER_N) $(ACMD_ARGS)
cluster-stop:
	@ACM_BUILD=$(B) bash deploy/local-cluster.sh stop $(B)/cluster

# ---- fuzzing: libFuzzer (clang) over every parser of proto/ and the safetensors header -----------------------------
# `make fuzz` builds build/fuzz/fuzz_NAME with -fsanitize=fuzzer,address,undefined (the parsers' sources compiled
# for coverage; the C libraries they call are not instrumented) and runs each for FUZZ_SECONDS on its committed corpus
# (tests/fuzz/run.sh: new inputs go to build/fuzz/work/NAME, crashes to build/fuzz/artifacts/; any finding fails).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 20
FB           := build/fuzz
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
                -fno-sanitize-recover=all -I. -Iengine -Iproto -Itests/fuzz/targets -I/usr/include/openblas
# the model-header target (fuzz_model) builds models: the whole engine is linked
FUZZ_LIB_SRC := $(PROTO_SRC) $(ENGINE_SRC)
FUZZ_LIB_OBJ := $(patsubst %.c,$(FB)/obj/%.o,$(FUZZ_LIB_SRC))
FUZZ_BIN     := $(patsubst %,$(FB)/fuzz_%,$(FUZZ_NAMES))
$(FB)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FB)/fuzz_%: tests/fuzz/targets/fuzz_%.c $(FUZZ_LIB_OBJ)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJ) $(PROTO_LIBS) $(ENGINE_LIBS)
fuzz-build: $(FUZZ_BIN)
fuzz:
	@command -v $(FUZZ_CC) >/dev/null || { echo "fuzz: $(FUZZ_CC) not found (Debian: apt-get install clang)"; exit 1; }
	@$(MAKE) --no-print-directory fuzz-build
	@bash tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_NAMES)

# ---- benchmarks: bench/NAME.c -> $(B)/bench/NAME, linked with every library of ours; bench/*.sh run them ----------
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRC))
$(B)/bench/%: bench/%.c $(wildcard bench/*.h) $(LIBS_OURS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ $< $(LIBS_OURS) $(ALL_LIBS) $(LDFLAGS)

bench-build: $(BENCH_BIN)

bench: deps
	@$(MAKE) --no-print-directory all bench-build
	@for s in $(filter-out bench/soak.sh bench/cuda_check.sh,$(wildcard bench/*.sh)); do bash $$s $(B) || exit 1; done

# The soak (bench/soak.sh) is apart: an hour by default (SOAK_SECS=60 for the CI version). So is bench/cuda_check.sh,
# which runs on a GPU machine (it says how).
SOAK_SECS ?= 3600
soak: deps
	@$(MAKE) --no-print-directory all bench-build
	@bash bench/soak.sh $(B) $(SOAK_SECS)

clean:
	rm -rf build

help:
	@echo "make            build $(B)/libacm.a and the programs (acm-train, acmd, acm) into $(B)/"
	@echo "make deps       install missing Debian packages (idempotent)"
	@echo "make test       deps + build + run every test (tests/run.sh)"
	@echo "make speech-subset  the speech cards' test subset in $(B)/speech-subset (make test builds it)"
	@echo "make serve      deps + build + serve the shipped models on http://127.0.0.1:8080 until 'make stop' or"
	@echo "                Ctrl-C (both drain); log in $(B)/acmd.log; ACMD_ARGS='...' adds acmd options"
	@echo "make stop       stop the server 'make serve' started (SIGTERM: it drains, then exits)"
	@echo "make image      acmd's container image $(IMAGE) from Debian packages (mmdebstrap + podman; deploy/container)"
	@echo "make cluster    haproxy on :8090 in front of CLUSTER_N=$(CLUSTER_N) acmd instances, Prometheus on :9090"
	@echo "                (deploy/local-cluster.sh; make cluster-stop stops it)"
	@echo "make deploy-node  npm packages of the deploy tests into $(DEPLOY_NODE) (make test does it)"
	@echo "make bench      run the benchmarks (bench/*.sh but the soak and bench/cuda_check.sh, which runs on a GPU"
	@echo "                machine; results in bench/RESULTS.md)"
	@echo "make soak       the soak: SOAK_SECS=$(SOAK_SECS) at 80% of saturation with bad clients (bench/soak.sh)"
	@echo "make fuzz       libFuzzer (clang) on every parser, FUZZ_SECONDS=$(FUZZ_SECONDS) each (tests/fuzz/run.sh), in build/fuzz/"
	@echo "make clean      remove build/ (every build: ordinary, sanitizer and fuzz)"
	@echo "knobs: SANITIZE=address,undefined|thread  builds into build/san-<list with - for ,>/ (e.g."
	@echo "       build/san-address-undefined/; 'make test SANITIZE=...' tests that build)"
	@echo "       WERROR=0|1 (default 1 when CI is set)  OPT=-O2  CC=cc  FUZZ_CC=clang"
	@echo "       CUDA=1: the build with the CUDA backend, into build/cuda/ (acmd --backend cuda; needs nvcc);"
	@echo "       CUDA_ARCH=$(CUDA_ARCH) (the GPU generation: 90 = H100/H200); BUNDLE_ROOT=DIR: programs for a machine"
	@echo "       without our libraries, into build/bundle/ (bench/cuda_check.sh bundle)"
	@echo "CUDA: $(if $(NVCC),nvcc $(NVCC) (engine/cuda/ compiled in every build; linked with CUDA=1),nvcc not found: engine/cuda/ skipped)"

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
