import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'artifacts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        fetch: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        URL: 'readonly',
        Buffer: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  // Apps stay apart: only an app's entry point may import another app (the gateway's main.ts embeds
  // the worker); anything else they share lives in libs/, which imports no app.
  ...[
    ['gateway', 'worker'],
    ['worker', 'gateway'],
  ].map(([app, other]) => ({
    files: [`apps/${app}/**/*.ts`],
    ignores: [`apps/${app}/src/main.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: `(^|/)${other}/src/`,
              message: `apps/${app} must not import apps/${other}: share it through libs/ (only main.ts may embed another app)`,
            },
          ],
        },
      ],
    },
  })),
  {
    files: ['libs/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ regex: '(^|/)apps/', message: 'a library must not import an app' }] },
      ],
    },
  },
);
