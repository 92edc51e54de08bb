// One line per check, the format run.sh counts: "ok - name" or
// "not ok - name" followed by "#   detail" lines.
export class Report {
    constructor() {
        this.passed = 0;
        this.failed = 0;
    }

    // Runs fn(); it returns (or throws) problems: [] or undefined = pass.
    check(name, fn) {
        let problems;
        try {
            problems = fn() || [];
        } catch (e) {
            problems = [`exception: ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`];
        }
        if (!Array.isArray(problems)) problems = [String(problems)];
        if (problems.length === 0) {
            this.passed++;
            console.log(`ok - ${name}`);
        } else {
            this.failed++;
            console.log(`not ok - ${name}`);
            for (const p of problems.slice(0, 40)) console.log(`#   ${p}`);
            if (problems.length > 40) console.log(`#   ... and ${problems.length - 40} more`);
        }
        return problems.length === 0;
    }

    async checkAsync(name, fn) {
        let problems;
        try {
            problems = (await fn()) || [];
        } catch (e) {
            problems = [`exception: ${e && e.message ? e.message : e}`];
        }
        return this.check(name, () => problems);
    }
}

// Collects assertion failures: expect(cond, message).
export function collector() {
    const problems = [];
    const expect = (cond, msg) => {
        if (!cond) problems.push(msg);
        return Boolean(cond);
    };
    return { problems, expect };
}
