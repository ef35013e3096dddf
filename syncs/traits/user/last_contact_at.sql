-- Last time we talked with the user, on any channel: emails, calls, meetings, chats, tickets.
select u.user_id, max(c.at) as last_contact_at
from {{ source('user') }} u
left join (
  select user_id, touched_at as at from analytics.contact_touches
  union all
  select user_id, created_at as at from analytics.support_tickets where user_id is not null
) c on c.user_id = u.user_id
group by u.user_id
