import cliProgress from 'cli-progress';
import { formatBytes } from '../repository/format.ts';

/**
 * A progress bar on stderr for long work. On a terminal it redraws in place; elsewhere (CI logs,
 * pipes) it prints a line now and then, so a log still shows that work moves on.
 */
export class ProgressBar {
  private readonly bar: cliProgress.SingleBar;
  private readonly started = Date.now();
  private running = false;
  private readonly unit: 'bytes' | 'count';

  constructor(label: string, unit: 'bytes' | 'count' = 'bytes') {
    this.unit = unit;
    this.bar = new cliProgress.SingleBar({
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% {doneText}/{totalText} {rate} eta {eta_formatted}`,
      hideCursor: true,
      noTTYOutput: true,
      notTTYSchedule: 5000,
      etaBuffer: 50,
      fps: 5,
    }, cliProgress.Presets.shades_classic);
  }

  private fields(done: number, total: number) {
    const seconds = (Date.now() - this.started) / 1000;
    if (this.unit === 'count') return { doneText: String(done), totalText: String(total), rate: '' };
    return { doneText: formatBytes(done), totalText: formatBytes(total), rate: seconds > 0 ? `${formatBytes(done / seconds)}/s` : '' };
  }

  update(done: number, total: number): void {
    if (!this.running) {
      this.bar.start(total, done, this.fields(done, total));
      this.running = true;
    }
    this.bar.setTotal(total);
    this.bar.update(done, this.fields(done, total));
  }

  stop(): void {
    if (this.running) this.bar.stop();
    this.running = false;
  }
}
