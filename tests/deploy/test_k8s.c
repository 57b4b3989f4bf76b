/*
 * test_k8s.c — deploy/k8s, offline (no cluster runs here): each kustomization renders with `kubectl kustomize`, the
 * rendered documents pass tests/deploy/k8s_check.js (Kubernetes' OpenAPI schemas through npm kubernetes-models, the
 * Prometheus operator's, the fields KServe requires, and the drain rules of docs/DEPLOY.md), the PrometheusRule is
 * the rule file of deploy/prometheus as it is, the checker catches a broken manifest, and the
 * options the manifests give acmd are options acmd accepts.
 * The npm packages are installed by `make deploy-node` (make test does it) into build/deploy-node.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deploy/deploy_util.h"
#include "server/harness.h"

#define NODE_PATH "build/deploy-node/node_modules"

static char dir[] = "/tmp/acm-k8s-XXXXXX";
static void setup(void) {
    cr_assert(dt_have("kubectl"), "kubectl is missing: make deps installs kubernetes-client");
    cr_assert(dt_have("node"), "node is missing");
    cr_assert(dt_sh(NULL, "test -d " NODE_PATH "/kubernetes-models") == 0, NODE_PATH " is missing: run make deploy-node");
    cr_assert(mkdtemp(dir));
}
static void teardown(void) { dt_sh(NULL, "rm -rf %s", dir); }

/* kubectl kustomize deploy/k8s/WHAT > dir/NAME.yaml; returns its exit status */
static int render(const char *what, const char *name) {
    char *out;
    /* kustomize 5 warns about the 2.0-era keys this repository keeps for Debian's kubectl 1.20: those lines only */
    int rc = dt_sh(&out, "kubectl kustomize deploy/k8s/%s >%s/%s.yaml 2>%s/err; rc=$?; grep -v '^# Warning: .* is deprecated' %s/err; "
                         "exit $rc", what, dir, name, dir, dir);
    cr_expect_str_empty(out, "kubectl kustomize deploy/k8s/%s:\n%s", what, out);
    free(out);
    return dt_sh(NULL, "test -s %s/%s.yaml", dir, name) == 0 ? rc : 1;
}

static int check(char **out, const char *files) {
    return dt_sh(out, "cd %s && NODE_PATH=$OLDPWD/" NODE_PATH " node $OLDPWD/tests/deploy/k8s_check.js %s", dir, files);
}

Test(k8s, overlays_and_kserve_render_and_validate, .init = setup, .fini = teardown, .timeout = 60) {
    cr_assert_eq(render("overlays/cpu", "cpu"), 0);
    cr_assert_eq(render("overlays/gpu", "gpu"), 0);
    cr_assert_eq(render("kserve", "kserve"), 0);
    char *out;
    int rc = check(&out, "cpu.yaml");
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "ok Deployment acmd\n") && strstr(out, "ok Service acmd\n") && strstr(out, "ok PodDisruptionBudget acmd\n")
              && strstr(out, "ok HorizontalPodAutoscaler acmd\n") && strstr(out, "4 documents, 0 errors"), "%s", out);
    free(out);
    rc = check(&out, "gpu.yaml kserve.yaml");
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "ok Deployment acmd-gpu\n") && strstr(out, "ok ServingRuntime acmd\n")
              && strstr(out, "ok InferenceService fmnist\n") && strstr(out, "6 documents, 0 errors"), "%s", out);
    free(out);
    /* the Prometheus operator's objects, and the PrometheusRule is acm-rules.yml as it is now */
    cr_assert_eq(render("monitoring", "monitoring"), 0);
    rc = check(&out, "monitoring.yaml");
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "ok PodMonitor acmd\n") && strstr(out, "ok PrometheusRule acmd\n"), "%s", out);
    free(out);
    rc = dt_sh(&out, "NODE_PATH=" NODE_PATH " node tests/deploy/k8s_check.js --prometheusrule deploy/prometheus/acm-rules.yml "
                     "| diff - deploy/k8s/monitoring/prometheusrule.yaml");
    cr_expect_eq(rc, 0, "deploy/k8s/monitoring/prometheusrule.yaml is not acm-rules.yml (regenerate it: see its kustomization):\n%s", out);
    free(out);
    /* the GPU overlay asks for a GPU and tolerates the GPU nodes' taint; the CPU one does neither */
    cr_expect_eq(dt_sh(NULL, "grep -q 'nvidia.com/gpu: 1' %s/gpu.yaml && grep -q 'key: nvidia.com/gpu' %s/gpu.yaml", dir, dir), 0);
    cr_expect_neq(dt_sh(NULL, "grep -q nvidia %s/cpu.yaml", dir), 0);
    /* the HPA scales on the queue-depth metric of the adapter's rule, CPU as the fallback */
    cr_expect_eq(check(&out, "--hpa cpu.yaml"), 0, "%s", out);
    cr_expect_str_eq(out, "Pods:acm_queue_depth,Resource:cpu\n");
    free(out);
    cr_expect_eq(dt_sh(NULL, "grep -q 'as: acm_queue_depth' deploy/k8s/metrics-adapter/prometheus-adapter.yaml"), 0);
}

Test(k8s, checker_catches_broken_manifests, .init = setup, .fini = teardown, .timeout = 60) {
    cr_assert_eq(render("overlays/cpu", "cpu"), 0);
    char *out;
    /* a grace period shorter than preStop + exit timeout: the kubelet's SIGKILL would cut the drain */
    cr_assert_eq(dt_sh(NULL, "sed 's/terminationGracePeriodSeconds: 35/terminationGracePeriodSeconds: 20/' %s/cpu.yaml > %s/a.yaml", dir, dir), 0);
    cr_expect_eq(check(&out, "a.yaml"), 1, "%s", out);
    cr_expect(strstr(out, "terminationGracePeriodSeconds 20 < preStop sleep 5 + --exit-timeout 25"), "%s", out);
    free(out);
    /* a schema error: a port that is not a number */
    cr_assert_eq(dt_sh(NULL, "sed 's/containerPort: 8080/containerPort: eighty/' %s/cpu.yaml > %s/b.yaml", dir, dir), 0);
    cr_expect_eq(check(&out, "b.yaml"), 1, "%s", out);
    cr_expect(strstr(out, "error Deployment acmd:") && strstr(out, "containerPort must be integer"), "%s", out);
    free(out);
    /* readiness on the liveness route: a draining pod would keep its traffic */
    cr_assert_eq(dt_sh(NULL, "sed 's#path: /v2/health/ready#path: /v2/health/live#' %s/cpu.yaml > %s/c.yaml", dir, dir), 0);
    cr_expect_eq(check(&out, "c.yaml"), 1, "%s", out);
    cr_expect(strstr(out, "readinessProbe is not httpGet /v2/health/ready"), "%s", out);
    free(out);
    /* a Service that selects nothing */
    cr_assert_eq(dt_sh(NULL, "awk '/^kind: Service/{s=1} s && /app.kubernetes.io\\/name: acmd/{sub(/acmd/, \"acm\"); s=0} {print}' "
                             "%s/cpu.yaml > %s/d.yaml", dir, dir), 0);
    cr_expect_eq(check(&out, "d.yaml"), 1, "%s", out);
    cr_expect(strstr(out, "Service acmd: selects no Deployment's pods"), "%s", out);
    free(out);
    /* pods behind a Service with the default per-address connection limit */
    cr_assert_eq(dt_sh(NULL, "sed '/- --max-per-ip/{N;d}' %s/cpu.yaml > %s/f.yaml", dir, dir), 0);
    cr_expect_eq(check(&out, "f.yaml"), 1, "%s", out);
    cr_expect(strstr(out, "no --max-per-ip 0"), "%s", out);
    free(out);
    /* a KServe runtime without the v2 protocol */
    cr_assert_eq(render("kserve", "kserve"), 0);
    cr_assert_eq(dt_sh(NULL, "sed 's/^  - v2$/  - v1/' %s/kserve.yaml > %s/e.yaml", dir, dir), 0);
    cr_expect_eq(check(&out, "e.yaml"), 1, "%s", out);
    cr_expect(strstr(out, "lacks v2"), "%s", out);
    free(out);
}

Test(k8s, acmd_accepts_the_options_the_manifests_give, .init = setup, .fini = teardown, .timeout = 60) {
    cr_assert_eq(render("overlays/cpu", "cpu"), 0);
    cr_assert_eq(render("kserve", "kserve"), 0);
    char *out;
    /* the Deployment's args, after the image's configuration (with the models where this repository has them) */
    int rc = dt_sh(&out, "args=$(cd %s && NODE_PATH=$OLDPWD/" NODE_PATH " node $OLDPWD/tests/deploy/k8s_check.js --args Deployment cpu.yaml) "
                         "&& echo args: $args && %s/acmd --config deploy/container/acmd.json "
                         "--model fmnist=models/fmnist-vit-acm.safetensors $args --print-config", dir, dt_build());
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "args: --drain-grace-s 5 --exit-timeout 25 --workers 2 --max-per-ip 0") && strstr(out, "\"exit_timeout\": 25")
              && strstr(out, "\"max_per_ip\": 0"), "%s", out);
    free(out);
    /* the ServingRuntime's args with KServe's {{.Name}} and /mnt/models filled in */
    rc = dt_sh(&out, "args=$(cd %s && NODE_PATH=$OLDPWD/" NODE_PATH " node $OLDPWD/tests/deploy/k8s_check.js --args ServingRuntime kserve.yaml "
                     "| sed -e 's/{{.Name}}/fmnist/' -e 's#/mnt/models/model.safetensors#models/fmnist-vit-acm.safetensors#') "
                     "&& echo args: $args && %s/acmd $args --print-config", dir, dt_build());
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "--model=fmnist=models/fmnist-vit-acm.safetensors") && strstr(out, "\"listen\": \"0.0.0.0:8080\""), "%s", out);
    free(out);
}
