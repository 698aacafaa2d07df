/** @type {import('next').NextConfig} */
const nextConfig = {
  poweredByHeader: false,
  // One copy of each at run time: a session made in a route handler is used in a page, and
  // openid-client checks its Configuration with instanceof.
  serverExternalPackages: ['openid-client', 'jose'],
  reactStrictMode: true,
  // One app in a workspace: trace files from here, not from the repository root.
  outputFileTracingRoot: new URL('..', import.meta.url).pathname,
};

export default nextConfig;
