// Per-adapter usage counters (GET /metrics): requests, prompt and generated tokens by adapter — what a team serving
// many fine-tunes charges back, ranks by popularity, or watches for one adapter's traffic. An adapter's label is its
// id as requested (a Hub repo, an S3 prefix, a name under --adapter-root, `merged` for per-request merges), the base
// model's is ""; past `maxLabels` distinct adapters the rest count under "_other", so a deployment with thousands of
// adapters keeps a bounded number of series (--metrics-adapter-labels).
import { Counter, type Registry } from 'prom-client';

export const OTHER_ADAPTERS = '_other';

export class AdapterUsageMetrics {
  private readonly requests: Counter<'adapter'>;
  private readonly promptTokens: Counter<'adapter'>;
  private readonly generatedTokens: Counter<'adapter'>;
  private readonly labelled = new Set<string>();

  constructor(registry: Registry, private readonly maxLabels: number) {
    const registers = [registry];
    this.requests = new Counter({ name: 'weft_adapter_requests_total', labelNames: ['adapter'] as const, registers,
      help: 'Requests finished, by adapter ("" the base model; "_other" past --metrics-adapter-labels adapters)' });
    this.promptTokens = new Counter({ name: 'weft_adapter_prompt_tokens_total', labelNames: ['adapter'] as const, registers,
      help: 'Prompt tokens of finished requests, by adapter' });
    this.generatedTokens = new Counter({ name: 'weft_adapter_generated_tokens_total', labelNames: ['adapter'] as const, registers,
      help: 'Generated tokens of finished requests, by adapter' });
  }

  /** One finished request of `adapter` (null: the base model). */
  record(adapter: string | null, promptTokens: number, generatedTokens: number): void {
    const labels = { adapter: this.labelOf(adapter ?? '') };
    this.requests.inc(labels);
    if (promptTokens > 0) this.promptTokens.inc(labels, promptTokens);
    if (generatedTokens > 0) this.generatedTokens.inc(labels, generatedTokens);
  }

  private labelOf(adapter: string): string {
    if (adapter === '' || this.labelled.has(adapter)) return adapter;
    if (this.labelled.size >= this.maxLabels) return OTHER_ADAPTERS;
    this.labelled.add(adapter);
    return adapter;
  }
}
