/**
 * Just enough of the ELF format to say what a native Node addon needs from the machine that
 * loads it: its architecture and the symbol versions it requires (`GLIBC_2.28`, …), read from
 * the `.gnu.version_r` section (SHT_GNU_verneed) as `readelf -V` prints them. Lambda's
 * `nodejs22.x` runs on Amazon Linux 2023, whose glibc is 2.34: an addon needing a newer
 * `GLIBC_2.x` fails to load there with `Runtime.ImportModuleError`.
 */

export interface ElfInfo {
  /** `e_machine`: 62 is x86-64, 183 is AArch64. */
  machine: number;
  /** Every (file, version) the object requires, e.g. `{ file: 'libc.so.6', version: 'GLIBC_2.17' }`. */
  versionNeeds: { file: string; version: string }[];
}

export const EM_X86_64 = 62;
const SHT_GNU_VERNEED = 0x6ffffffe;

export class ElfError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ElfError';
  }
}

/**
 * Read a 64-bit little-endian ELF object's machine and version needs.
 *
 * @throws ElfError when the bytes are not such an object or its tables run out of bounds.
 * @example
 * const { machine, versionNeeds } = readElf(fs.readFileSync('crc32.linux-x64-gnu.node'));
 * machine === EM_X86_64; maxGlibc(versionNeeds) // [2, 17]
 */
export function readElf(bytes: Uint8Array): ElfInfo {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (end: number, what: string) => {
    if (end > bytes.byteLength) throw new ElfError(`${what} runs past the end of the file`);
  };
  need(64, 'ELF header');
  if (view.getUint32(0) !== 0x7f454c46) throw new ElfError('not an ELF file');
  if (bytes[4] !== 2) throw new ElfError('not a 64-bit ELF file');
  if (bytes[5] !== 1) throw new ElfError('not a little-endian ELF file');
  const machine = view.getUint16(18, true);
  const shoff = Number(view.getBigUint64(40, true));
  const shentsize = view.getUint16(58, true);
  const shnum = view.getUint16(60, true);
  if (shoff === 0 || shnum === 0) throw new ElfError('no section headers (cannot read version needs)');
  need(shoff + shnum * shentsize, 'section header table');

  const section = (i: number) => {
    const at = shoff + i * shentsize;
    return {
      type: view.getUint32(at + 4, true),
      offset: Number(view.getBigUint64(at + 24, true)),
      size: Number(view.getBigUint64(at + 32, true)),
      link: view.getUint32(at + 40, true),
      info: view.getUint32(at + 44, true),
    };
  };
  const text = (table: { offset: number; size: number }, at: number) => {
    let end = table.offset + at;
    const limit = table.offset + table.size;
    while (end < limit && bytes[end] !== 0) end++;
    if (end >= limit) throw new ElfError('string table entry runs past its section');
    return new TextDecoder().decode(bytes.subarray(table.offset + at, end));
  };

  const versionNeeds: ElfInfo['versionNeeds'] = [];
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (s.type !== SHT_GNU_VERNEED) continue;
    if (s.link >= shnum) throw new ElfError('version needs point at a missing string table');
    const strings = section(s.link);
    need(strings.offset + strings.size, 'string table');
    // sh_info is the number of Verneed entries; each lists its Vernaux entries.
    let entry = s.offset;
    for (let n = 0; n < s.info; n++) {
      need(entry + 16, 'version need entry');
      const count = view.getUint16(entry + 2, true);
      const file = text(strings, view.getUint32(entry + 4, true));
      let aux = entry + view.getUint32(entry + 8, true);
      for (let k = 0; k < count; k++) {
        need(aux + 16, 'version need aux entry');
        versionNeeds.push({ file, version: text(strings, view.getUint32(aux + 8, true)) });
        const nextAux = view.getUint32(aux + 12, true);
        if (nextAux === 0) break;
        aux += nextAux;
      }
      const next = view.getUint32(entry + 12, true);
      if (next === 0) break;
      entry += next;
    }
  }
  return { machine, versionNeeds };
}

/**
 * The highest `GLIBC_x.y` among version needs, as `[x, y]`, or undefined when none is needed.
 *
 * @example
 * maxGlibc([{ file: 'libc.so.6', version: 'GLIBC_2.2.5' }, { file: 'libc.so.6', version: 'GLIBC_2.17' }]) // [2, 17]
 */
export function maxGlibc(needs: readonly { version: string }[]): [number, number] | undefined {
  let best: [number, number] | undefined;
  for (const { version } of needs) {
    const m = /^GLIBC_(\d+)\.(\d+)/.exec(version);
    if (!m) continue;
    const v: [number, number] = [Number(m[1]), Number(m[2])];
    if (!best || v[0] > best[0] || (v[0] === best[0] && v[1] > best[1])) best = v;
  }
  return best;
}
