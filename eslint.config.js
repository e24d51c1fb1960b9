// ESLint flat config: typescript-eslint with type information, so floating promises are caught,
// and one import rule per folder of src/ so that the arrows between layers point one way only
// (ARCHITECTURE.md draws them).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * LAYERS says, for each folder of src/, which sibling folders it may import from. The leaves at
 * src/ itself (errors, logger, duration, forwarder, log-limit, node-internals, heap-flags) may be
 * imported by everyone and import no folder; index.ts, the public API, is the one exception.
 */
const LAYERS = {
  docker: [],
  tcp: [],
  udp: [],
  engine: ['tcp', 'udp'],
  publish: ['engine', 'tcp', 'udp', 'docker'],
  netns: ['docker'],
  workers: ['publish', 'engine', 'tcp', 'udp', 'docker'],
  registry: ['docker'],
  observe: ['registry', 'publish', 'docker'],
  cli: ['observe', 'registry', 'workers', 'netns', 'publish', 'engine', 'tcp', 'udp', 'docker'],
};
const FOLDERS = Object.keys(LAYERS);

/** forbidden builds the no-restricted-imports patterns for a file in `folder` (or a leaf). */
function forbidden(folder, allowed) {
  const prefix = folder === undefined ? './' : '../';
  return FOLDERS.filter((f) => f !== folder && !allowed.includes(f)).map((f) => ({
    group: [`${prefix}${f}/*`, `${prefix}${f}`],
    message:
      folder === undefined
        ? `src/ leaves import no folder (src/${f}/ is above them); see ARCHITECTURE.md`
        : `src/${folder}/ may not import src/${f}/: arrows point down (ARCHITECTURE.md)`,
  }));
}

const layerRules = [
  ...FOLDERS.map((folder) => ({
    files: [`src/${folder}/**/*.ts`],
    rules: {
      'no-restricted-imports': ['error', { patterns: forbidden(folder, LAYERS[folder]) }],
    },
  })),
  {
    files: ['src/*.ts'],
    ignores: ['src/index.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: forbidden(undefined, []) }] },
  },
];

export default tseslint.config(
  { ignores: ['dist/', 'dist-bench/', 'node_modules/', 'coverage/', 'build/', 'test-results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['*.js', 'bin/*.js'] } },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  ...layerRules,
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  // A separate block: merged into the one above, languageOptions would replace the parser
  // options that turn type information off, and .js/.mjs files outside the root would fail.
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);
