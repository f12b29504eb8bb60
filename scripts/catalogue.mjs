#!/usr/bin/env node
// Holds docs/CATALOGUE.md and the test names to each other (issue 9 item 8).
//
//   node scripts/catalogue.mjs            # check; exit 1 on any problem
//   node scripts/catalogue.mjs --list     # print every test that names an ID, by ID
//   node scripts/catalogue.mjs --counts   # print the coverage counts table (Markdown) that docs/SECURITY.md quotes
//
// Tests name catalogue IDs in their names: Rust test functions start with one or more lower-case IDs
// (`c29_c30_refresh_400_and_403_are_terminal`, `s12_s13_…`); node:test titles carry upper-case IDs anywhere
// (`F1/C38: 100 concurrent …`, `demo: … (C35)`, `C64 Vite …`). docs/CATALOGUE.md has one table row per ID:
//
//   | C28 | what the case is, in our words | `tests/core_session.rs::c28_refresh_401_is_terminal_sessionexpired_once` |
//   | S25 | …                              | n/a: the server keeps its state in memory; there is no store to lose |
//   | C56 | …                              | not yet covered: why |
//
// It fails when
//   1. an ID a test names is not a row of docs/CATALOGUE.md;
//   2. a row that cites tests has no test naming its ID, or cites a test that does not exist in the cited file
//      (a node:test title is cited by a prefix of it), or cites a test that does not name the row's ID;
//   3. a row says "n/a" or "not yet covered" but a test names its ID (the document is stale), or gives no reason;
//   4. the IDs are not contiguous (C01…, S01…, F1…) or a row is repeated: every case has exactly one line;
//   5. the counts table in docs/SECURITY.md (between its `catalogue-counts` markers) is not exactly what `--counts`
//      prints: the threat model quotes the coverage, and must not go stale.
// It prints one count line, "catalogue result: N passed; M failed", where N counts the IDs whose row holds and M
// counts the problems; scripts/test.sh reads that line.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const DOC = 'docs/CATALOGUE.md';
const SECURITY = 'docs/SECURITY.md';
const COUNTS_BEGIN = '<!-- catalogue-counts:begin (node scripts/catalogue.mjs --counts) -->';
const COUNTS_END = '<!-- catalogue-counts:end -->';

// ------------------------------------------------------------------ the tests and the IDs they name
const RUST_DIRS = ['src', 'tests', 'server/src', 'server/tests', 'verifier/src', 'verifier/tests', 'api/src', 'api/tests'];
const JS_DIRS = ['tests/e2e'];

function walk(dir, keep, out = []) {
  let entries;
  try { entries = readdirSync(join(ROOT, dir)); } catch { return out; }
  for (const e of entries) {
    const rel = join(dir, e);
    if (e === 'node_modules' || e === 'target') continue;
    const st = statSync(join(ROOT, rel));
    if (st.isDirectory()) walk(rel, keep, out);
    else if (keep(rel)) out.push(rel);
  }
  return out;
}

/** Canonical spelling of an ID: C and S with two digits, F without padding (as the catalogue writes them). */
function canon(letter, digits) {
  const l = letter.toUpperCase();
  const n = Number(digits);
  return l === 'F' ? `F${n}` : `${l}${String(n).padStart(2, '0')}`;
}

/** Every test: { file, name, ids[] }. */
function collectTests() {
  const tests = [];
  for (const file of RUST_DIRS.flatMap((d) => walk(d, (f) => f.endsWith('.rs')))) {
    const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (!/^\s*#\[(test|tokio::test|wasm_bindgen_test)\b/.test(lines[i])) continue;
      for (let j = i + 1; j < Math.min(lines.length, i + 8); j++) {
        const m = /^\s*(?:pub\s+)?(?:async\s+)?fn\s+([A-Za-z0-9_]+)/.exec(lines[j]);
        if (!m) continue;
        const name = m[1];
        const lead = /^((?:[csf]\d{1,2}_)+)/.exec(name);
        const ids = lead ? [...lead[1].matchAll(/([csf])(\d{1,2})_/g)].map((x) => canon(x[1], x[2])) : [];
        tests.push({ file, name, ids });
        break;
      }
    }
  }
  for (const file of JS_DIRS.flatMap((d) => walk(d, (f) => f.endsWith('.test.mjs')))) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    const re = /^\s*(?:test|it)(?:\.\w+)?\(\s*(['"`])((?:\\.|(?!\1)[^\\])*)\1/gm;
    for (const m of text.matchAll(re)) {
      const name = m[2].replace(/\\(.)/g, '$1');
      const ids = [...name.matchAll(/\b([CSF])(\d{1,2})\b/g)].map((x) => canon(x[1], x[2]));
      tests.push({ file, name, ids });
    }
  }
  return tests;
}

// ------------------------------------------------------------------ the document
/** Rows: { id, line, text, cites[], status: 'covered'|'na'|'open', reason }. */
function readDoc() {
  const rows = [];
  const text = readFileSync(join(ROOT, DOC), 'utf8');
  text.split('\n').forEach((line, i) => {
    const m = /^\|\s*([CSF]\d{1,2})\s*\|(.*)\|\s*$/.exec(line);
    if (!m) return;
    const cells = m[2].split(/(?<!\\)\|/);
    const what = cells[0].trim();
    const cover = cells.slice(1).join('|').trim();
    const row = { id: m[1], line: i + 1, what, cover, cites: [], status: 'covered', reason: '' };
    const na = /^(n\/a|not yet covered)\s*:?\s*(.*)$/i.exec(cover);
    if (na) {
      row.status = na[1].toLowerCase() === 'n/a' ? 'na' : 'open';
      row.reason = na[2].trim();
    }
    // Citations: `path::test name` (the name of a node:test title may be a prefix, and may end in "…").
    for (const c of cover.matchAll(/`([^`]+?)::([^`]+)`/g)) row.cites.push({ file: c[1], name: c[2].replace(/…$/, '') });
    rows.push(row);
  });
  return rows;
}

// ------------------------------------------------------------------ the check
const tests = collectTests();
const byId = new Map();
for (const t of tests) for (const id of t.ids) (byId.get(id) ?? byId.set(id, []).get(id)).push(t);

if (process.argv.includes('--list')) {
  const key = (id) => [id[0], Number(id.slice(1))];
  for (const id of [...byId.keys()].sort((a, b) => (key(a)[0] + key(a)[1] / 1000 > key(b)[0] + key(b)[1] / 1000 ? 1 : -1))) {
    for (const t of byId.get(id)) console.log(`${id}\t${t.file}::${t.name}`);
  }
  process.exit(0);
}

const rows = readDoc();

/** The coverage counts table, in Markdown: per part of the catalogue, how many cases are covered, n/a, or open. */
function countsTable(byIdRow) {
  const parts = [['C', 'client: hostile inputs and edge cases'], ['S', 'server: hostile cases'], ['F', 'faults and load']];
  const line = (cells) => `| ${cells.join(' | ')} |`;
  const out = [line(['cases', 'covered by tests', 'n/a (with the reason)', 'not yet covered', 'total']), '| --- | ---: | ---: | ---: | ---: |'];
  const tally = (list) => ['covered', 'na', 'open'].map((st) => list.filter((r) => r.status === st).length);
  for (const [letter, name] of parts) {
    const list = [...byIdRow.values()].filter((r) => r.id[0] === letter);
    const nums = list.map((r) => Number(r.id.slice(1)));
    const range = `${canon(letter, String(Math.min(...nums)))}–${canon(letter, String(Math.max(...nums)))}`;
    out.push(line([`${name} (${range})`, ...tally(list), list.length]));
  }
  const all = [...byIdRow.values()];
  out.push(line(['**all**', ...tally(all).map((n) => `**${n}**`), `**${all.length}**`]));
  return out.join('\n');
}

const problems = [];
const bad = new Set();
const problem = (id, msg) => { problems.push(`${id ? id + ': ' : ''}${msg}`); if (id) bad.add(id); };

const seen = new Map();
for (const r of rows) {
  if (seen.has(r.id)) problem(r.id, `${DOC}:${r.line} repeats the row of line ${seen.get(r.id).line}`);
  else seen.set(r.id, r);
}
for (const letter of ['C', 'S', 'F']) {
  const nums = [...seen.keys()].filter((id) => id[0] === letter).map((id) => Number(id.slice(1)));
  const max = Math.max(0, ...nums);
  if (max === 0) problem(null, `${DOC} lists no ${letter} case`);
  for (let n = 1; n <= max; n++) {
    const id = canon(letter, String(n));
    if (!seen.has(id)) problem(id, `${DOC} skips it (the ${letter} cases must run ${canon(letter, '1')}…${canon(letter, String(max))} without gaps)`);
  }
}
for (const [id, ts] of byId) {
  if (!seen.has(id)) problem(id, `named by ${ts.map((t) => `${t.file}::${t.name}`).join(', ')} but not a row of ${DOC}`);
}
for (const r of seen.values()) {
  const naming = byId.get(r.id) ?? [];
  if (!r.what) problem(r.id, `${DOC}:${r.line} does not say what the case is`);
  if (r.status === 'covered') {
    if (naming.length === 0) problem(r.id, `${DOC}:${r.line} says it is covered, but no test names ${r.id}`);
    if (r.cites.length === 0) problem(r.id, `${DOC}:${r.line} cites no test (write \`file::test\`, "n/a: why" or "not yet covered: why")`);
    for (const c of r.cites) {
      const found = tests.filter((t) => t.file === c.file && (t.name === c.name || (c.file.endsWith('.mjs') && t.name.startsWith(c.name))));
      if (found.length === 0) problem(r.id, `${DOC}:${r.line} cites ${c.file}::${c.name}, which is not a test there`);
      else if (!found.some((t) => t.ids.includes(r.id))) problem(r.id, `${DOC}:${r.line} cites ${c.file}::${c.name}, which does not name ${r.id}`);
    }
  } else {
    if (!r.reason) problem(r.id, `${DOC}:${r.line} gives no reason`);
    if (naming.length > 0) {
      problem(r.id, `${DOC}:${r.line} says "${r.status === 'na' ? 'n/a' : 'not yet covered'}", but ${naming.map((t) => `${t.file}::${t.name}`).join(', ')} names it`);
    }
  }
}

const counts = countsTable(seen);
if (process.argv.includes('--counts')) {
  console.log(counts);
  process.exit(0);
}
let security = '';
try { security = readFileSync(join(ROOT, SECURITY), 'utf8'); } catch { /* reported below */ }
const begin = security.indexOf(COUNTS_BEGIN);
const end = security.indexOf(COUNTS_END);
if (begin < 0 || end < begin) {
  problem(null, `${SECURITY} has no counts table between the lines "${COUNTS_BEGIN}" and "${COUNTS_END}"`);
} else if (security.slice(begin + COUNTS_BEGIN.length, end).trim() !== counts) {
  problem(null, `${SECURITY}'s coverage counts differ from what \`node scripts/catalogue.mjs --counts\` prints; paste its output between the markers:\n${counts}`);
}

const count = (s) => [...seen.values()].filter((r) => r.status === s).length;
const namingTests = tests.filter((t) => t.ids.length > 0).length;
for (const p of problems) console.log(`[catalogue] problem: ${p}`);
console.log(`[catalogue] ${seen.size} cases in ${DOC}: ${count('covered')} covered, ${count('na')} n/a, ${count('open')} not yet covered; ` +
  `${namingTests} of ${tests.length} tests name an ID`);
const passed = [...seen.keys()].filter((id) => !bad.has(id)).length;
console.log(`catalogue result: ${problems.length ? 'FAILED' : 'ok'}. ${passed} passed; ${problems.length} failed`);
process.exit(problems.length ? 1 : 0);
