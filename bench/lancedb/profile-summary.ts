/**
 * Where the time goes in `node --cpu-prof` profiles: self time per function and per source
 * file, for each profile (one per thread: the main thread and each build-part worker).
 *
 *   LANCEDB_BENCH_PROFILE=1 LANCEDB_BENCH_CASES=bitmap-cat_i32 npm run bench:lancedb
 *   npx tsx bench/lancedb/profile-summary.ts bench/.data/lancedb/profiles   # every profile there
 *   TOP=25 npx tsx bench/lancedb/profile-summary.ts <file.cpuprofile>...      # some of them
 *
 * Each child writes one profile per thread, named CPU.<date>.<time>.<pid>.<thread>.<seq>: the
 * main thread is thread 0, and under tsx each thread's module loader has a thread of its own.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
const top = Number(process.env.TOP ?? 15);
if (args.length === 0) {
  console.error('usage: profile-summary.ts <dir with .cpuprofile files | file.cpuprofile>...');
  process.exit(2);
}
/** Coarse buckets, so module loading, hashing and index work can be told apart at a glance. */
function category(fn: string, file: string): string {
  if (fn === '(idle)' || fn === '(program)' || fn === '(garbage collector)') return fn;
  if (/^node:internal\/(modules|deps\/cjs-module-lexer|bootstrap|source_map)|^npm:(tsx|esbuild)$/.test(file) || /^(compileSourceTextModule|Module|internalModuleStat|readFileUtf8)$/.test(fn)) {
    return 'module loading (incl. tsx)';
  }
  if (file === 'node:internal/crypto/hash') return 'sha256 (fragment fingerprints)';
  if (file === 'npm:ajv') return 'ajv (state machine validation)';
  if (file.startsWith('lib/indexes/') || file.startsWith('npm:roaring')) return 'index training/search (lib/indexes)';
  if (file === 'npm:apache-arrow' || file === 'npm:flatbuffers' || file === 'lib/format/ipc.ts') return 'Arrow IPC encode/decode';
  if (file === 'lib/store/local.ts' || /^(read|open|openFileHandle|close|fstat|stat|writeBuffer|writeString)$/.test(fn)) return 'file I/O';
  return 'other';
}

const files = args.flatMap((a) =>
  fs.statSync(a).isDirectory()
    ? fs.readdirSync(a).filter((f) => f.endsWith('.cpuprofile')).sort().map((f) => path.join(a, f))
    : [a],
);

/** Shorten a URL to what a reader needs: repo-relative path or package name. */
function where(url: string): string {
  if (!url) return '(native/VM)';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = u.slice(nm + 'node_modules/'.length).split('/');
    return `npm:${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (u.startsWith('node:')) return u;
  const repo = u.indexOf('/lib/') >= 0 ? u.slice(u.indexOf('/lib/') + 1) : path.basename(u);
  return repo;
}

for (const f of files) {
  const p = JSON.parse(fs.readFileSync(f, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  const byFile = new Map<string, number>();
  const byCategory = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    const n = byId.get(id)!;
    const fn = n.callFrame.functionName || '(anonymous)';
    const key = fn === '(idle)' || fn === '(program)' || fn === '(garbage collector)' ? fn : `${fn} ${where(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    const file = fn === '(idle)' || fn === '(program)' || fn === '(garbage collector)' ? fn : where(n.callFrame.url);
    byFile.set(file, (byFile.get(file) ?? 0) + dt);
    const cat = category(fn, file);
    byCategory.set(cat, (byCategory.get(cat) ?? 0) + dt);
    total += dt;
  });
  const busy = total - (self.get('(idle)') ?? 0);
  console.log(`\n${path.basename(f)}: ${(total / 1000).toFixed(2)} s sampled, ${(busy / 1000).toFixed(2)} s busy`);
  const show = (m: Map<string, number>, title: string) => {
    console.log(`  ${title}`);
    for (const [k, ms] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`    ${ms.toFixed(0).padStart(7)} ms ${((ms / total) * 100).toFixed(1).padStart(5)}%  ${k}`);
    }
  };
  show(byCategory, 'self time by category');
  show(byFile, 'self time by file');
  show(self, 'self time by function');
}
