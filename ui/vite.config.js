// Vite builds the editor into dist/ (served by `flowbus ui --static`, installed
// under share/flowbus/ui). Relative asset paths so the bundle works from any
// prefix; everything bundled, nothing loaded from a CDN. `npm run dev` serves
// the source with hot reload and proxies /api to a running server started as
// `flowbus ui --no-token --allow-origin http://localhost:5173` (FLOWBUS_UI,
// default http://127.0.0.1:8080).
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig({
  plugins: [react()],
  base: './',
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 3000, sourcemap: false },
  server: { proxy: { '/api': process.env.FLOWBUS_UI || 'http://127.0.0.1:8080' } },
  test: { include: ['tests/unit/**/*.test.js'] },
  worker: { format: 'iife' },
});
