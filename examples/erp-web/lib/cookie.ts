// The browser's only state: an encrypted (JWE, dir + A256GCM) cookie naming a server-side session.
import { EncryptJWT, jwtDecrypt } from 'jose';
import { settings } from './config';

export const SESSION_COOKIE = 'erp_session';
export const LOGIN_COOKIE = 'erp_login';

export async function seal(payload: Record<string, unknown>, maxAgeSeconds: number): Promise<string> {
  return new EncryptJWT(payload)
    .setProtectedHeader({ alg: 'dir', enc: 'A256GCM' })
    .setIssuedAt()
    .setExpirationTime(`${maxAgeSeconds}s`)
    .encrypt(settings().sessionKey);
}

export async function unseal<T>(value: string | undefined): Promise<T | undefined> {
  if (!value) return undefined;
  try {
    const { payload } = await jwtDecrypt(value, settings().sessionKey, {
      keyManagementAlgorithms: ['dir'],
      contentEncryptionAlgorithms: ['A256GCM'],
    });
    return payload as T;
  } catch {
    return undefined; // tampered, expired, or sealed by another process: no session
  }
}

export function cookieOptions(maxAgeSeconds: number) {
  return {
    httpOnly: true,
    sameSite: 'lax' as const,
    secure: settings().secureCookies,
    path: '/',
    maxAge: maxAgeSeconds,
  };
}
