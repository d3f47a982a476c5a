// Preloaded (`node --require`) into a benchmarked process: at exit, print its peak RSS
// (VmHWM, the high-water mark of this process image) on stderr as `peak-rss-kb <n>`.
const fs = require('node:fs');
process.on('exit', () => {
  const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  process.stderr.write(`peak-rss-kb ${m ? m[1] : Math.round(process.resourceUsage().maxRSS)}\n`);
});
