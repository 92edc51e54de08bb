// A small NetworkPolicy evaluator (networking.k8s.io/v1 semantics) used to
// check that the flows of the architecture are allowed and others denied.
//
// A pod is { name, namespace, labels, ports: Map(portName -> number), ip? }.
// A namespace is known by its labels (kubernetes.io/metadata.name is always
// set, as the API server does).

export function selectorMatches(sel, labels) {
    if (!sel) return true;
    for (const [k, v] of Object.entries(sel.matchLabels || {})) {
        if (labels[k] !== v) return false;
    }
    for (const e of sel.matchExpressions || []) {
        const has = Object.prototype.hasOwnProperty.call(labels, e.key);
        const val = labels[e.key];
        switch (e.operator) {
        case 'In': if (!has || !e.values.includes(val)) return false; break;
        case 'NotIn': if (has && e.values.includes(val)) return false; break;
        case 'Exists': if (!has) return false; break;
        case 'DoesNotExist': if (has) return false; break;
        default: return false;
        }
    }
    return true;
}

function ipToInt(ip) {
    return ip.split('.').reduce((a, o) => (a * 256) + Number(o), 0);
}

function inCidr(ip, cidr) {
    const [net, bits] = cidr.split('/');
    const n = Number(bits);
    if (n === 0) return true;
    const mask = 2 ** 32 - 2 ** (32 - n);
    return (ipToInt(ip) & mask) >>> 0 === (ipToInt(net) & mask) >>> 0;
}

function peerMatches(peer, policyNs, other, nsLabels) {
    if (peer.ipBlock) {
        if (!other.ip) return false;
        return inCidr(other.ip, peer.ipBlock.cidr) && !(peer.ipBlock.except || []).some((c) => inCidr(other.ip, c));
    }
    if (!other.namespace) return false; // an address outside the cluster
    if (peer.namespaceSelector) {
        if (!selectorMatches(peer.namespaceSelector, nsLabels(other.namespace))) return false;
    } else if (other.namespace !== policyNs) return false;
    return selectorMatches(peer.podSelector, other.labels);
}

function portMatches(ports, target, port, protocol) {
    if (!ports || ports.length === 0) return true;
    return ports.some((p) => {
        if ((p.protocol || 'TCP') !== protocol) return false;
        if (p.port === undefined) return true;
        let num = p.port;
        if (typeof num === 'string') num = target.ports ? target.ports.get(num) : undefined;
        if (num === undefined) return false;
        const end = p.endPort || num;
        return port >= num && port <= end;
    });
}

function selecting(policies, pod, type) {
    return policies.filter((np) => np.metadata.namespace === pod.namespace &&
        selectorMatches(np.spec.podSelector, pod.labels) &&
        (np.spec.policyTypes || ['Ingress']).includes(type));
}

// Whether `src` may open a connection to `dst` on port/protocol. Either end
// may be an outside address ({ ip } only): policies apply to pods only.
export function allowed(policies, nsLabels, src, dst, port, protocol = 'TCP') {
    if (src.namespace) {
        const eg = selecting(policies, src, 'Egress');
        if (eg.length > 0) {
            const ok = eg.some((np) => (np.spec.egress || []).some((rule) =>
                ((rule.to || []).length === 0 || rule.to.some((peer) => peerMatches(peer, np.metadata.namespace, dst, nsLabels))) &&
                portMatches(rule.ports, dst, port, protocol)));
            if (!ok) return false;
        }
    }
    if (dst.namespace) {
        const ing = selecting(policies, dst, 'Ingress');
        if (ing.length > 0) {
            const ok = ing.some((np) => (np.spec.ingress || []).some((rule) =>
                ((rule.from || []).length === 0 || rule.from.some((peer) => peerMatches(peer, np.metadata.namespace, src, nsLabels))) &&
                portMatches(rule.ports, dst, port, protocol)));
            if (!ok) return false;
        }
    }
    return true;
}
