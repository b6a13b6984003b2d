/** Jest runs in native ESM mode: the NestJS 12 packages are ESM-only. */
export default {
  testEnvironment: 'node',
  rootDir: '.',
  roots: ['<rootDir>/apps', '<rootDir>/libs', '<rootDir>/test'],
  testMatch: ['**/*.spec.ts', '**/*.e2e-spec.ts'],
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: {
    '^#(session-store|token-verifier|revocation|identity-events|config|redis|metrics|health|logging)$':
      '<rootDir>/libs/$1/src/index.ts',
    '^#redis/core$': '<rootDir>/libs/redis/src/core.ts',
    '^#session-store/lua$': '<rootDir>/libs/session-store/src/lua.ts',
    '^#session-store/express$': '<rootDir>/libs/session-store/src/express-session-store.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
    // @fastify/static (CommonJS) requires the ESM-only content-disposition 3. Node 20 runs that
    // (require of ESM), but jest's module loader cannot before Node 24.9: tests use the
    // API-compatible CommonJS content-disposition 2 (a devDependency) instead.
    '^content-disposition$': '<rootDir>/node_modules/content-disposition/dist/index.js',
  },
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json' }] },
  testTimeout: 30000,
};
