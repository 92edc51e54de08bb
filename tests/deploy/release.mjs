// Release independence: what a router release changes in the cluster.
//   node release.mjs REPO_ROOT
// The image names deploy-application.yml re-tags for a release (its
// `kustomize edit set image NAME=...:${IMAGE_TAG}` lines) must appear in no
// backend or frontend pod template, and re-tagging them in a copy of each
// overlay must leave the backend StatefulSet and the frontend Deployment
// byte-identical (so `kubectl apply` restarts no backend pod), while the
// router's Deployment does change (the simulation took effect).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import YAML from 'yaml';
import { Report } from './lib/report.mjs';
import { find, podSpecOf, allContainers } from './lib/objects.mjs';

const root = path.resolve(process.argv[2] || '../..');
const report = new Report();
const wfText = fs.readFileSync(path.join(root, '.github/workflows/deploy-application.yml'), 'utf8');

// Names re-tagged with the release's tag.
const retagged = [...wfText.matchAll(/kustomize edit set image "?([a-z0-9./-]+)=[^"\s]*\$\{?IMAGE_TAG\}?/g)].map((m) => m[1]);

function render(dir) {
    const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`kubectl kustomize ${dir}: ${r.stderr}`);
    return YAML.parseAllDocuments(r.stdout).map((d) => d.toJS()).filter(Boolean);
}

// `kustomize edit set image NAME=NEWNAME:TAG` on a kustomization file.
function setImage(file, name, newName, tag) {
    const k = YAML.parse(fs.readFileSync(file, 'utf8'));
    k.images = k.images || [];
    const e = k.images.find((i) => i.name === name);
    if (e) Object.assign(e, { newName, newTag: tag });
    else k.images.push({ name, newName, newTag: tag });
    fs.writeFileSync(file, YAML.stringify(k));
}

const imageName = (img) => img.replace(/@.*$/, '').replace(/:[^/:]*$/, '');

report.check('release: deploy-application.yml re-tags the router image for a release', () =>
    (retagged.includes('pod-router') ? [] : [`re-tagged names ${JSON.stringify(retagged)} do not include pod-router`]));

report.check('release: the images a router release re-tags appear in no backend/frontend pod template', () => {
    const problems = [];
    const objs = render(path.join(root, 'deploy/k8s/base'));
    for (const [kind, name] of [['StatefulSet', 'backend'], ['Deployment', 'frontend']]) {
        const w = find(objs, kind, name);
        if (!w) { problems.push(`${kind} ${name} not rendered`); continue; }
        for (const c of allContainers(podSpecOf(w))) {
            if (retagged.includes(imageName(c.image))) {
                problems.push(`${kind} ${name} container ${c.name} uses image ${c.image}, which every router release re-tags: the release restarts ${name} pods`);
            }
        }
    }
    return problems;
});

for (const overlay of ['production', 'development']) {
    report.check(`release: re-tagging ${retagged.join(', ') || '(nothing)'} in overlays/${overlay} leaves the backend and frontend templates unchanged`, () => {
        const problems = [];
        const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'release-check-'));
        try {
            fs.cpSync(path.join(root, 'deploy'), path.join(tmp, 'deploy'), { recursive: true });
            const dir = path.join(tmp, 'deploy/k8s/overlays', overlay);
            const before = render(dir);
            for (const n of retagged) setImage(path.join(dir, 'kustomization.yaml'), n, `registry.digitalocean.com/hyperstudy/${n}`, 'release-check-9.9.9');
            const after = render(dir);
            for (const [kind, name] of [['StatefulSet', 'backend'], ['Deployment', 'frontend']]) {
                const b = find(before, kind, name);
                const a = find(after, kind, name);
                if (!b || !a) { problems.push(`${kind} ${name} not rendered`); continue; }
                if (JSON.stringify(a.spec.template) !== JSON.stringify(b.spec.template)) {
                    const imgs = (o) => allContainers(podSpecOf(o)).map((c) => c.image).join(', ');
                    problems.push(`${kind} ${name} pod template changes with a router release (images ${imgs(b)} -> ${imgs(a)}): every backend pod restarts`);
                }
            }
            const r = find(after, 'Deployment', 'pod-router');
            if (!r || !allContainers(podSpecOf(r)).some((c) => c.image.endsWith(':release-check-9.9.9'))) {
                problems.push('the simulated release did not reach Deployment pod-router (check is not effective)');
            }
        } finally {
            fs.rmSync(tmp, { recursive: true, force: true });
        }
        return problems;
    });
}

console.log(`# release: ${report.passed} ok, ${report.failed} not ok`);
process.exit(report.failed ? 1 : 0);
