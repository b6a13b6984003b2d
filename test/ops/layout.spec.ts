import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ESLint } from 'eslint';

/** Every TypeScript file of product code under `dir` (specs are not product code). */
function productFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return productFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.spec.ts') ? [path] : [];
  });
}

/** The two key spaces: the only files that may spell a Redis key. */
const KEY_SPACES = ['libs/session-store/src/keys.ts', 'libs/revocation/src/queue-keys.ts'];

describe('the layout holds', () => {
  const eslint = new ESLint();
  const lint = async (code: string, filePath: string) =>
    (await eslint.lintText(code, { filePath }))[0]!.messages.map((m) => m.ruleId);
  const embed =
    "import { WorkerModule } from '../../worker/src/worker.module.js';\nexport const x = WorkerModule;\n";

  it('only an app’s main.ts imports another app, and no library imports an app', async () => {
    expect(await lint(embed, 'apps/gateway/src/main.ts')).toEqual([]);
    expect(await lint(embed, 'apps/gateway/src/admin/admin.service.ts')).toEqual(['no-restricted-imports']);
    expect(
      await lint(
        "import { GatewayModule } from '../../gateway/src/gateway.module.js';\nexport const x = GatewayModule;\n",
        'apps/worker/src/revocation.executor.ts',
      ),
    ).toEqual(['no-restricted-imports']);
    expect(
      await lint(
        "import { IngestService } from '../../../apps/gateway/src/enqueue/ingest.service.js';\nexport const x = IngestService;\n",
        'libs/revocation/src/audit-log.ts',
      ),
    ).toEqual(['no-restricted-imports']);
  });

  it('no template string outside the key spaces builds a Redis key', () => {
    // `${anything}:word`, `${anything}:{`, `${anything}:*` or `${prefix}*`: how a key or pattern is spelled.
    const keyLike = /`[^`\n]*\$\{[^}]+\}(:[a-z{*]|\*)/;
    const offenders = ['apps', 'libs']
      .flatMap(productFiles)
      .filter((file) => !KEY_SPACES.includes(file))
      .flatMap((file) =>
        readFileSync(file, 'utf8')
          .split('\n')
          .map((line, i) => ({ file, line: i + 1, text: line.trim() }))
          .filter(({ text }) => keyLike.test(text)),
      );
    expect(offenders).toEqual([]);
  });

  it('one Redis client type: nothing outside libs/redis spells Redis | Cluster', () => {
    const offenders = ['apps', 'libs']
      .flatMap(productFiles)
      .filter((file) => !file.startsWith('libs/redis/') && !file.startsWith('libs/session-store/'))
      .filter((file) => /Redis \| Cluster|Cluster \| Redis/.test(readFileSync(file, 'utf8')));
    expect(offenders).toEqual([]);
  });
});
