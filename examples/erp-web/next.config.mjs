/** @type {import('next').NextConfig} */
const nextConfig = {
  poweredByHeader: false,
  reactStrictMode: true,
  // One app in a workspace: trace files from here, not from the repository root.
  outputFileTracingRoot: new URL('..', import.meta.url).pathname,
};

export default nextConfig;
