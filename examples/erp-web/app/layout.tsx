import './globals.css';
import type { ReactNode } from 'react';

export const metadata = { title: 'ERP (Tessera example)' };

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
