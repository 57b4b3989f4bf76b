// k8s_check.js — offline checks of rendered Kubernetes manifests (tests/deploy/test_k8s.c runs it):
//   node tests/deploy/k8s_check.js FILE.yaml...      (NODE_PATH=build/deploy-node/node_modules: `make deploy-node`)
// 1. Every document of a built-in kind is validated against Kubernetes' OpenAPI schema (npm kubernetes-models 4.5,
//    Kubernetes 1.32's schemas), and the Prometheus operator's PodMonitor and PrometheusRule against the operator's
//    (@kubernetes-models/prometheus-operator 4.4): types, required fields, enums, formats. Unknown fields are not caught (the schemas
//    allow them, as the API server does without strict field validation); 3 checks the fields that matter by path.
// 2. KServe kinds (no schema package exists for them offline): the fields KServe requires are present and typed, and
//    each container of a ServingRuntime is validated as a core/v1 Container.
// 3. The rules of docs/DEPLOY.md: a Deployment's pods have readiness on /v2/health/ready and liveness on
//    /v2/health/live; terminationGracePeriodSeconds >= preStop sleep + --exit-timeout (acmd's SIGKILL-free drain);
//    --max-per-ip 0 (behind a Service or KServe's queue-proxy many clients share a few source addresses);
//    the Service, PodDisruptionBudget and HorizontalPodAutoscaler select or target that Deployment's pods.
// Prints one line per document ("ok KIND NAME" or "error KIND NAME: message") and exits 1 on any error.
//   node tests/deploy/k8s_check.js --args KIND FILE.yaml   prints the args of KIND's first container, one a line
//   node tests/deploy/k8s_check.js --hpa FILE.yaml         prints the HPA's metrics as TYPE:NAME,...
//   node tests/deploy/k8s_check.js --prometheusrule RULES   prints deploy/k8s/monitoring/prometheusrule.yaml: the
//                                                           Prometheus rule file RULES as a PrometheusRule
"use strict";
const fs = require("fs");
const YAML = require("yaml");

const BUILTIN = {
  "apps/v1/Deployment": "kubernetes-models/apps/v1/Deployment",
  "v1/Service": "kubernetes-models/v1/Service",
  "v1/ConfigMap": "kubernetes-models/v1/ConfigMap",
  "policy/v1/PodDisruptionBudget": "kubernetes-models/policy/v1/PodDisruptionBudget",
  "autoscaling/v2/HorizontalPodAutoscaler": "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler",
  "monitoring.coreos.com/v1/PodMonitor": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor",
  "monitoring.coreos.com/v1/PrometheusRule": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule",
};
const { Container } = require("kubernetes-models/v1/Container");

function validateBuiltin(doc) {
  const mod = BUILTIN[`${doc.apiVersion}/${doc.kind}`];
  if (!mod) throw new Error(`no schema for ${doc.apiVersion} ${doc.kind}`);
  const Cls = require(mod)[doc.kind];
  new Cls(doc).validate();
}

function need(cond, msg) {
  if (!cond) throw new Error(msg);
}

function validateContainer(c, where) {
  try {
    new Container(c).validate();
  } catch (e) {
    throw new Error(`${where}: ${e.message}`);
  }
}

function validateKserve(doc) {
  const s = doc.spec || {};
  if (doc.kind === "ServingRuntime" || doc.kind === "ClusterServingRuntime") {
    need(doc.apiVersion === "serving.kserve.io/v1alpha1", `apiVersion ${doc.apiVersion} (serving.kserve.io/v1alpha1)`);
    need(Array.isArray(s.supportedModelFormats) && s.supportedModelFormats.length > 0, "spec.supportedModelFormats is empty");
    for (const f of s.supportedModelFormats) need(typeof f.name === "string" && f.name, "a supportedModelFormats entry has no name");
    need(Array.isArray(s.protocolVersions) && s.protocolVersions.every((p) => ["v1", "v2", "grpc-v1", "grpc-v2"].includes(p)),
         `spec.protocolVersions ${JSON.stringify(s.protocolVersions)}`);
    need(s.protocolVersions.includes("v2"), "spec.protocolVersions lacks v2 (acmd speaks the Open Inference Protocol)");
    need(Array.isArray(s.containers) && s.containers.length > 0, "spec.containers is empty");
    s.containers.forEach((c, i) => validateContainer(c, `spec.containers[${i}]`));
    need(s.containers.some((c) => c.name === "kserve-container"), "no container named kserve-container");
    for (const c of s.containers)
      need(arg(c.args, "max-per-ip") === "0", `container ${c.name}: no --max-per-ip 0 (KServe's queue-proxy is one address)`);
    return;
  }
  if (doc.kind === "InferenceService") {
    need(doc.apiVersion === "serving.kserve.io/v1beta1", `apiVersion ${doc.apiVersion} (serving.kserve.io/v1beta1)`);
    const m = s.predictor && s.predictor.model;
    need(m && m.modelFormat && typeof m.modelFormat.name === "string", "spec.predictor.model.modelFormat.name is missing");
    need(["v1", "v2", "grpc-v1", "grpc-v2"].includes(m.protocolVersion), `spec.predictor.model.protocolVersion ${m.protocolVersion}`);
    need(typeof m.storageUri === "string" && /^[a-z0-9]+:\/\//.test(m.storageUri), `spec.predictor.model.storageUri ${m.storageUri}`);
    return;
  }
  throw new Error(`unknown KServe kind ${doc.kind}`);
}

// the value of --NAME in an args list (--NAME V or --NAME=V), or undefined
function arg(args, name) {
  for (let i = 0; i < (args || []).length; i++) {
    if (args[i] === `--${name}`) return args[i + 1];
    if (args[i].startsWith(`--${name}=`)) return args[i].slice(name.length + 3);
  }
  return undefined;
}

function matches(selector, labels) {
  return Object.entries(selector || {}).every(([k, v]) => labels && labels[k] === v);
}

function checkRules(docs) {
  const errors = [];
  const deps = docs.filter((d) => d.kind === "Deployment");
  for (const d of deps) {
    const pod = d.spec.template.spec;
    const labels = d.spec.template.metadata.labels;
    if (!matches(d.spec.selector.matchLabels, labels)) errors.push(`Deployment ${d.metadata.name}: selector does not match its pod labels`);
    for (const c of pod.containers) {
      const at = `Deployment ${d.metadata.name} container ${c.name}`;
      const rp = c.readinessProbe && c.readinessProbe.httpGet, lp = c.livenessProbe && c.livenessProbe.httpGet;
      if (!rp || rp.path !== "/v2/health/ready") errors.push(`${at}: readinessProbe is not httpGet /v2/health/ready`);
      if (!lp || lp.path !== "/v2/health/live") errors.push(`${at}: livenessProbe is not httpGet /v2/health/live`);
      const ps = c.lifecycle && c.lifecycle.preStop && c.lifecycle.preStop.exec && c.lifecycle.preStop.exec.command;
      const sleep = ps && /sleep$/.test(ps[0]) ? Number(ps[1]) : 0;
      const exitTimeout = Number(arg(c.args, "exit-timeout") ?? 25);
      const grace = Number(arg(c.args, "drain-grace-s") ?? 5);
      const tgps = pod.terminationGracePeriodSeconds ?? 30;
      if (tgps < sleep + exitTimeout)
        errors.push(`${at}: terminationGracePeriodSeconds ${tgps} < preStop sleep ${sleep} + --exit-timeout ${exitTimeout}: the kubelet's SIGKILL would cut the drain`);
      if (grace > exitTimeout) errors.push(`${at}: --drain-grace-s ${grace} > --exit-timeout ${exitTimeout}`);
      if (arg(c.args, "max-per-ip") !== "0")
        errors.push(`${at}: no --max-per-ip 0 (behind a Service every client comes from a few proxy addresses)`);
    }
  }
  const podLabels = deps.map((d) => d.spec.template.metadata.labels);
  for (const s of docs.filter((d) => d.kind === "Service"))
    if (!podLabels.some((l) => matches(s.spec.selector, l))) errors.push(`Service ${s.metadata.name}: selects no Deployment's pods`);
  for (const p of docs.filter((d) => d.kind === "PodDisruptionBudget"))
    if (!podLabels.some((l) => matches(p.spec.selector.matchLabels, l))) errors.push(`PodDisruptionBudget ${p.metadata.name}: selects no Deployment's pods`);
  for (const h of docs.filter((d) => d.kind === "HorizontalPodAutoscaler")) {
    const t = h.spec.scaleTargetRef;
    if (!deps.some((d) => t.kind === "Deployment" && d.metadata.name === t.name))
      errors.push(`HorizontalPodAutoscaler ${h.metadata.name}: targets ${t.kind} ${t.name}, not in these manifests`);
  }
  return errors;
}

function load(files) {
  return files.flatMap((f) => YAML.parseAllDocuments(fs.readFileSync(f, "utf8")).map((d) => d.toJSON())).filter(Boolean);
}
if (process.argv[2] === "--args") {
  const d = load(process.argv.slice(4)).find((x) => x.kind === process.argv[3]);
  const spec = d.kind === "Deployment" ? d.spec.template.spec : d.spec;
  console.log(spec.containers[0].args.join("\n"));
  process.exit(0);
}
if (process.argv[2] === "--prometheusrule") {
  const rules = YAML.parse(fs.readFileSync(process.argv[3], "utf8"));
  const cr = {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    metadata: { name: "acmd" },
    spec: { groups: rules.groups },
  };
  process.stdout.write(`# Generated from ${process.argv[3]} by tests/deploy/k8s_check.js --prometheusrule: edit that file, not this.\n`);
  process.stdout.write(YAML.stringify(cr, { lineWidth: 0 }));
  process.exit(0);
}
if (process.argv[2] === "--hpa") {
  const h = load(process.argv.slice(3)).find((x) => x.kind === "HorizontalPodAutoscaler");
  console.log(h.spec.metrics.map((m) => `${m.type}:${(m.pods || m.object || m.external || {}).metric?.name ?? m.resource?.name}`).join(","));
  process.exit(0);
}

let failed = 0;
const docs = [];
for (const file of process.argv.slice(2)) {
  for (const d of YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))) {
    if (d.errors.length) {
      console.log(`error ${file}: ${d.errors[0].message}`);
      failed++;
      continue;
    }
    const doc = d.toJSON();
    if (doc) docs.push(doc);
  }
}
for (const doc of docs) {
  const id = `${doc.kind} ${doc.metadata && doc.metadata.name}`;
  try {
    if (/^serving\.kserve\.io\//.test(doc.apiVersion)) validateKserve(doc);
    else validateBuiltin(doc);
    console.log(`ok ${id}`);
  } catch (e) {
    console.log(`error ${id}: ${e.message}`);
    failed++;
  }
}
for (const e of checkRules(docs)) {
  console.log(`error ${e}`);
  failed++;
}
console.log(`${docs.length} documents, ${failed} errors`);
process.exit(failed ? 1 : 0);
