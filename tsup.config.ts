import { defineConfig } from 'tsup';

// The package ships two entries (`oncetask` and `oncetask/testing`), split so both share one
// copy of the library (one OnceTaskError class, one manager), in both module systems behind one `exports` map (package.json):
// ESM (`dist/index.js`, types `dist/index.d.ts`) and CommonJS (`dist/index.cjs`, types
// `dist/index.d.cts`); and the `oncetask` command (`dist/cli.js`, ESM). Dependencies stay
// external, except p-limit (and its yocto-queue): they are ESM-only, and `require()` of ESM
// from the CommonJS build would need Node 20.19+. No source maps: they would point at sources
// the package does not ship. (`npm run build` empties dist/ first.)
export default defineConfig([
  { entry: { index: 'src/index.ts', testing: 'src/testing/index.ts' }, format: ['esm', 'cjs'], splitting: true, dts: true, sourcemap: false, target: 'node20', noExternal: ['p-limit', 'yocto-queue'] },
  { entry: { cli: 'src/cli/main.ts' }, format: ['esm'], dts: false, sourcemap: false, target: 'node20', noExternal: ['p-limit', 'yocto-queue'] },
]);
