// Runs the CLI from source in a child process (tests spawn this with `node --import tsx`).
import { main } from '../../lib/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
